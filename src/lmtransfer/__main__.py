from lmtransfer.cli.main import main

main()

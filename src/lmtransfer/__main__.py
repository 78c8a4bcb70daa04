from lmtransfer.cli import main

main()

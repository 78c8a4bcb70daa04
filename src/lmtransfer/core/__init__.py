"""The bottom layer: errors, atomic writes, the names of choices, devices, threads and text helpers.

Nothing here imports any other part of lmtransfer.
"""

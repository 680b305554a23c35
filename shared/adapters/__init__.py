"""Storage behind the ports of shared/ports.py: MongoDB (and FerretDB) in `mongo`, memory for unit tests."""

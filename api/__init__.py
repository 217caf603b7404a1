"""GlobalMart's read API (FastAPI): see :mod:`api.app`."""

"""Helpers shared by the tests of several directories.

`cluster`, `processes` and `facade` are pytest plugins (registered in tests/conftest.py): their
fixtures are available to every test, and tests import their classes and constants from here,
never from a conftest. Webhook receivers and /metrics scraping are dev tools of the package
(hoststate.devcluster.receiver, hoststate.devcluster.scraper), shared with the demo and the benchmarks.
"""

"""Loaded by Python at start-up when this directory is on PYTHONPATH (bench.netlab
puts it there for peers with a WAN): switches on bench.wanem as YASEARCH_WANEM says."""

import os

if os.environ.get("YASEARCH_WANEM"):
    from bench.wanem import install_from_env

    install_from_env()

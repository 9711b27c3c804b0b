"""Hand-written judged queries of ``python -m bench relevance``: (query, answers, kind).

Answers are pydoc page names (``json`` is ``/json.html``); any of them answers
the query. ``natural`` queries are how a user asks; ``identifier`` queries
name an API as code spells it. Queries whose answers are not in the snapshot
are left out. (``urlsplit`` was dropped: its page, ``urllib.parse``, is not
in the 530-page snapshot, and the ``urllib`` package page does not mention it.)
"""

from __future__ import annotations

HAND: list[tuple[str, list[str], str]] = [
    ("parse command line arguments", ["argparse", "optparse", "getopt"], "natural"),
    ("read and write csv files", ["csv"], "natural"),
    ("compress data with gzip", ["gzip", "zlib"], "natural"),
    ("regular expression substitution", ["re"], "natural"),
    ("run a subprocess and capture its output", ["subprocess"], "natural"),
    ("create a temporary file or directory", ["tempfile"], "natural"),
    ("sha256 message digest", ["hashlib"], "natural"),
    ("generate random numbers", ["random"], "natural"),
    ("date and time arithmetic", ["datetime"], "natural"),
    ("copy a whole directory tree", ["shutil"], "natural"),
    ("decimal fixed point arithmetic", ["decimal", "_pydecimal"], "natural"),
    ("rational numbers", ["fractions"], "natural"),
    ("send email over smtp", ["smtplib"], "natural"),
    ("unit testing framework", ["unittest"], "natural"),
    ("pretty print data structures", ["pprint"], "natural"),
    ("measure how long a snippet of code takes", ["timeit"], "natural"),
    ("serialize python objects to bytes", ["pickle", "marshal"], "natural"),
    ("read configuration ini files", ["configparser"], "natural"),
    ("run functions in a pool of threads", ["concurrent.futures"], "natural"),
    ("queue for producer consumer threads", ["queue"], "natural"),
    ("heap priority queue", ["heapq"], "natural"),
    ("binary search in a sorted list", ["bisect"], "natural"),
    ("download a web page over http", ["urllib", "http", "requests", "aiohttp"], "natural"),
    ("open files in a zip archive", ["zipfile"], "natural"),
    ("walk the abstract syntax tree", ["ast"], "natural"),
    ("write log messages to a file", ["logging"], "natural"),
    ("object oriented filesystem paths", ["pathlib"], "natural"),
    ("event loop for asynchronous io", ["asyncio", "asyncio.events", "asyncio.base_events"], "natural"),
    ("json.dumps", ["json"], "identifier"),
    ("re.sub", ["re"], "identifier"),
    ("os.path.join", ["posixpath", "os"], "identifier"),
    ("subprocess.run", ["subprocess"], "identifier"),
    ("asyncio.gather", ["asyncio.tasks", "asyncio"], "identifier"),
    ("collections.OrderedDict", ["collections"], "identifier"),
    ("functools.lru_cache", ["functools"], "identifier"),
    ("itertools.chain", ["itertools"], "identifier"),
    ("shutil.rmtree", ["shutil"], "identifier"),
    ("time.sleep", ["time"], "identifier"),
    ("datetime.timedelta", ["datetime"], "identifier"),
    ("hashlib.sha256", ["hashlib"], "identifier"),
    ("struct.unpack", ["struct"], "identifier"),
    ("socket.create_connection", ["socket"], "identifier"),
    ("threading.Lock", ["threading"], "identifier"),
    ("contextlib.contextmanager", ["contextlib"], "identifier"),
    ("dataclasses.field", ["dataclasses"], "identifier"),
    ("sys.argv", ["sys"], "identifier"),
    ("sort_keys", ["json"], "identifier"),
    ("lru_cache", ["functools"], "identifier"),
    ("create_default_context", ["ssl"], "identifier"),
    ("run_until_complete", ["asyncio.base_events", "asyncio.events"], "identifier"),
    ("namedtuple", ["collections"], "identifier"),
    ("TemporaryDirectory", ["tempfile"], "identifier"),
    ("ThreadPoolExecutor", ["concurrent.futures"], "identifier"),
]

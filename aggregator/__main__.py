import sys

from aggregator.cli import main

if __name__ == "__main__":  # guarded: parse-pool processes started by forkserver/spawn import this module
    sys.exit(main())

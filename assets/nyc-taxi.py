#!/usr/bin/env python3
"""The NYC-taxi training job on today's Dask: how the yellow-taxi trips were paid.

Usage: nyc-taxi.py SCHEDULER [CSV_GLOB]

SCHEDULER is the Dask scheduler's address, as fhdask passed it. With corral,
`corral batch --dask -- ./nyc-taxi.py` passes it (tls://host:port) and sets the TLS client
settings in the environment; by hand, `eval "$(corral dask-env NAME)"` first, then
`./nyc-taxi.py "$DASK_SCHEDULER_ADDRESS"`.

CSV_GLOB defaults to $NYC_TAXI_CSV, else yellow_tripdata_2015-*.csv in the current directory
(`corral gen taxi --out DIR` makes such files, with the exact counts in DIR/expected.json).

Prints one line per payment type, `TYPE COUNT`, in type order.
"""

import os
import sys

import dask
import dask.dataframe as dd
from distributed import Client


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    address = argv[1]
    files = argv[2] if len(argv) > 2 else os.environ.get(
        "NYC_TAXI_CSV", "yellow_tripdata_2015-*.csv"
    )
    # Without a client certificate distributed fails deep inside with a TypeError; say what
    # is missing instead.
    if address.startswith("tls://") and not dask.config.get(
        "distributed.comm.tls.client.cert", None
    ):
        print(
            "nyc-taxi.py: %s is a TLS scheduler and no client certificate is configured; "
            'run `eval "$(corral dask-env NAME)"` first, or start the job with '
            "`corral batch --dask`" % address,
            file=sys.stderr,
        )
        return 2
    with Client(address, timeout="60s") as client:
        workers = len(client.scheduler_info()["workers"])
        print("nyc-taxi.py: %d Dask workers at %s" % (workers, address), file=sys.stderr)
        # Integer columns with gaps elsewhere in a file would break dtype inference from the
        # first block; payment_type is what is counted, as integers.
        df = dd.read_csv(files, assume_missing=True, dtype={"payment_type": "int64"})
        counts = df.payment_type.value_counts().compute()
    for kind, n in sorted(counts.items()):
        print(kind, n)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The ``cluster`` fixture: examples/scale-out/run.sh on ephemeral ports (see _scale_out_util)."""

from _scale_out_util import cluster as cluster

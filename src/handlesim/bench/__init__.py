"""The benchmark harness: workloads, an open-loop load generator, HdrHistogram recording, reports and plots."""

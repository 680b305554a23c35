"""`triage bench`: the pipeline's throughput against the raw transport's and a store-bound reference's, on
the same broker and store, in one run.

1. Raw transport (relay.py): the same N events (make_events, so the same sizes) relayed through as many
   consume-and-publish hops as the pipeline has, with no work.
2. Store-bound reference (relay.py): the same hops, each also doing its case's store work: the first inserts
   one document per case, each later one updates it by _id; what the pipeline could reach if the store trips
   it cannot avoid were its only work.
3. Pipeline (pipeline.py): N events published as fast as the broker takes them, timed until every case is
   routed; then a steady load at half that maximum, for a minute (or `--sustain` seconds): publish → routed
   latency percentiles, and the services' memory at the start and end.

Throughput is N / (first publish → last arrival), the arrival being the broker timestamp of the last record
on the final topic (case-routed for the pipeline). Where the time goes is read without a profiler
(machine.py): the CPU seconds of every process involved (/proc/<pid>/stat), each service's
triage_stage_seconds histogram, and its triage_store_commands_total counter (store commands per case).
"""

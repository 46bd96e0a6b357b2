"""The batch state machine, below the BatchOperator and the BatchTrigger.

- :mod:`.inputs`: a batch's items (list, JSONL file or glob) and its fingerprint.
- :mod:`.manifest`: the header and journal under ``output_path/_edgeinfer/`` (one record codec).
- :mod:`.fanout`: one request per item from the worker, bounded and rate-limited.
- :mod:`.native`: one native batch per round, for a vendor that runs batches itself.
- :mod:`.watch`: polling a round until it is over (run by the trigger, or on the worker).
- :mod:`.index`: what a batch remembers per item while it streams (a few bytes each).
- :mod:`.results`: ``results.jsonl``, ``failures.jsonl`` and media, streamed in input order.
- :mod:`.run`: the rounds, from the operator's arguments to its result.

Nothing here names a vendor: it asks the client and hook what the vendor can do.
"""

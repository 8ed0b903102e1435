"""Data-subject request fulfilment (``dsr_fulfilment``, docs/dsr_fulfilment.md): carry out the rights the policy grants,
through the data map, and close the loop with deadline tracking.

- :mod:`include.fulfilment.rules` — what each request asks for (pure: action or outcome, and why);
- :mod:`include.fulfilment.source` — the operational side through the data map (read, claim, complete, flags);
- :mod:`include.fulfilment.package` — the export package (streamed, deterministic zip);
- :mod:`include.fulfilment.ledger` — the compliance store's records (migration 0006);
- :mod:`include.fulfilment.steps` — the DAG's steps (plan, fulfil, erase, verify, finish);
- :mod:`include.fulfilment.params` — the trigger form.

Erasures go through the erasure engine (:mod:`include.erasure`), unchanged.
"""

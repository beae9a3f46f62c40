"""The ground every stage, ``checks`` and ``training`` stand on.

Errors, the data contract (schema), the config models, the stage contract and registry,
the runner, ingest, the run directory, the ledger and progress reporting live here.
Nothing in ``core`` imports a stage module except through the registry, lazily.
"""

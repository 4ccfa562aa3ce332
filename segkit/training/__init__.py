"""The training layer: ``engine`` (the loop), ``setup`` (model, loss, resume), ``optim``, ``losses``,
``budget`` (time budgets), ``acceleration`` (compile), ``distributed`` (DDP), ``progress`` (logs, curves),
``plots``, ``workdir`` and ``faults`` (signals, non-finite losses). ``segkit.train`` is ``engine.train``.

Nothing outside training and the command line imports this package: inference never loads it."""

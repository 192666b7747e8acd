"""Parity with the authors' code: our split exported in their input format, their code run on it
with the smallest adaptation, its epoch chosen on our validation users, and a side-by-side table.

PTUPCDR / EMCDR (easezyc/WSDM2022-PTUPCDR): ``python -m recbole_coldmeta.benchmarks.parity.ptupcdr
--authors_code=PATH``. Modules: :mod:`.cdr_export` (our cross-domain split as their CSV files),
:mod:`.ptupcdr_official` (their code in a process of its own), :mod:`.report` (the table) and
:mod:`.ptupcdr` (the command line). TaNP (IIEdm/TaNP): ``python -m
recbole_coldmeta.benchmarks.parity.tanp --authors_code=PATH`` (:mod:`.tanp_official` runs their
code on the export of :mod:`.melu_export`). MAMO (dongmanqing/Code-for-MAMO): ``python -m
recbole_coldmeta.benchmarks.parity.mamo --authors_code=PATH`` (:mod:`.mamo_official` runs their
code on the same export, its input built by :mod:`.mamo_input`). The authors' code is never
downloaded, copied or committed: ``--authors_code`` is a local checkout.
"""

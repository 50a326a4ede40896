"""What a person reads: report.html (`page`), its plots, kft-compare's table.

`report.write(run_folder)` writes a run's report.html again.
"""

from kft.report.page import write as write  # noqa: F401

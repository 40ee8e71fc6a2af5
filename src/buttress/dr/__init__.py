"""Data protection: backups verified by restoring them, restores, retention, drills.

* :mod:`buttress.dr.sqlite`: online SQLite backups, verification in scratch, restore;
* :mod:`buttress.dr.catalog`: the backup directory as a catalog, retention and pruning;
* :mod:`buttress.dr.manifest`: what a backup records (row counts, content hashes, sentinel);
* :mod:`buttress.dr.guard`: notice a SQLite file deleted or replaced under a running application;
* :mod:`buttress.dr.metrics`: freshness and verification as Prometheus gauges;
* :mod:`buttress.dr.drill`: disaster drills that measure the RTO and RPO achieved.

The command is ``buttress dr``; see ``docs/dr.md``.  ``import buttress`` imports nothing here.
"""

"""Paper tables and numbers: each module turns summary CSVs into `paper/generated/*.tex`."""

"""Published curves: the table layout and the shipped tables in reference/data (table), where their numbers
come from (sources), the readers of each project's released results (released, released_dmc), `make
reference` building the tables again (build), and the curves `make figures` draws beside the runs (overlays).

Imports analysis.stats (each suite's score), analysis.errors and iqrl's task lists; never figures."""

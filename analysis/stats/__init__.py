"""Statistics of the tidy table, as pure functions (no I/O, no plotting): each suite's score (scores), the
estimators and the stratified bootstrap (estimators), the scores and their uncertainty that figures draw
(metrics), and the final score per value of a swept key (ablations).

Imports analysis.runs (task groups, canonical values) and analysis.errors; never reference or figures."""

"""What the analysis shows: `make figures` (make) with its per-task curves (curves), pooled suite figures
(pooled), sweep figures (sweeps), the drawing functions (plots), score tables (tables) and index page
(index_page); the README's figure of published curves (published_figure); and the generated sections of
docs/learning-check.md (learning_check).

The top room: imports runs, stats and reference; nothing of analysis/ imports it."""

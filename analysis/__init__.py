"""From run folders to figures, in four rooms that import downward only (no room imports one above it):

    figures    what `make figures` writes: per-task curves, pooled suite figures, sweeps, score tables, the
               index page, the README's published figure, the learning-check page   (imports all below)
    reference  published curves: where they come from, `make reference` building the shipped tables of
               reference/data, their readers, and the overlays `make figures` draws  (imports stats, runs)
    stats      scores per suite, rliable estimators and the stratified bootstrap, ablation grids
                                                                                      (imports runs)
    runs       run folders and sweeps into one tidy table: identity, repeats, task groups, synthetic runs

Every room raises and warns through analysis.errors, the ground floor."""

"""The evaluation core: victims and their updates, the attacks run on a row (`rows`), and the
judges (`scoring`: the label judge and sample-level `identification`), metrics and gradient
informativeness."""

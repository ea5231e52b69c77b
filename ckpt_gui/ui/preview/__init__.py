"""The parts of the tensor preview (the panel itself is ui/preview_panel.py, which assembles
them). Modules here import pyqtgraph at their top: import them only once the panel is built."""


def configure_pyqtgraph():
    """pyqtgraph as every plot of the app expects it (arrays row-major, white background);
    returns the module. Called by each panel that builds plots, whichever is built first."""
    import pyqtgraph as pg

    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False, background="w",
                        foreground="k")
    return pg

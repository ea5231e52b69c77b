"""The parts of the tensor preview (the panel itself is ui/preview_panel.py, which assembles
them). Modules here import pyqtgraph at their top: import them only once the panel is built."""

"""The Qt binding itself must keep Python's reference counts: PySide6 6.12.0 drops one reference
to None (and True/False) on every call that returns nothing, so a long session, or a dialog that
fills thousands of rows, aborts the interpreter ("Fatal Python error: none_dealloc")."""
import sys


def test_qt_calls_keep_the_reference_counts_of_none_true_and_false(qapp):
    from PySide6.QtWidgets import QLabel

    label = QLabel()
    before = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True),
                                                             ("False", False))}
    for _ in range(200):
        label.setText("x")
        label.setEnabled(True)
        label.setEnabled(False)
    after = {name: sys.getrefcount(obj) for name, obj in (("None", None), ("True", True),
                                                            ("False", False))}
    # other threads may hold or drop a few references meanwhile; 200 calls would drop 200
    assert all(after[k] >= before[k] - 20 for k in before), (before, after)

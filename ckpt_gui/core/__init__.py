"""The checkpoint engine: plain Python on TensorFlow, numpy and h5py. No Qt below this line."""
from .model import (BIAS, BROKEN, COUNTER, METADATA, NORMALIZATION, OK, OPTIMIZER, OTHER,
                    PARTIAL, ROLES, WEIGHT, CheckpointInfo, DirectoryScan, FileInfo, ObjectNode,
                    StateFileInfo, TensorStats, VariableInfo)
from .scan import ScanError, check_directory, scan_directory

__all__ = [
    "BIAS", "BROKEN", "COUNTER", "METADATA", "NORMALIZATION", "OK", "OPTIMIZER", "OTHER",
    "PARTIAL", "ROLES", "WEIGHT", "CheckpointInfo", "DirectoryScan", "FileInfo", "ObjectNode",
    "StateFileInfo", "TensorStats", "VariableInfo", "ScanError", "check_directory",
    "scan_directory",
]

"""Everything mmliera writes and reads: adapter files, fit checks, export, resume, safe loading,
atomic writes."""
from .adapter_bank import AdapterBank, AdapterBankError
from .adapter_file import (AdapterCheckpointError, adapter_settings, adapter_state_dict,
                           base_weights_sha256, load_adapter_checkpoint, read_adapter_checkpoint,
                           save_adapter_checkpoint)
from .atomic import atomic_path, is_partial, write_text_atomic
from .digest import state_dict_sha256, weights_sha256
from .export import ExportError, export_merged, merged_state_dict, plain_config
from .fit import CheckpointMismatchError, check_checkpoint_fits, check_config_checkpoint
from .load import load_weights
from .resume import (UnreadableCheckpointError, checkpoint_problem, find_resume_checkpoint,
                     read_last_checkpoint, remove_partial_files)
from .safe_load import mmengine_safe_globals, safe_load

__all__ = [
    'AdapterBank', 'AdapterBankError', 'base_weights_sha256', 'AdapterCheckpointError',
    'adapter_settings', 'adapter_state_dict', 'load_adapter_checkpoint', 'read_adapter_checkpoint',
    'save_adapter_checkpoint', 'atomic_path', 'is_partial', 'write_text_atomic', 'ExportError',
    'export_merged', 'merged_state_dict', 'plain_config', 'CheckpointMismatchError',
    'check_checkpoint_fits', 'check_config_checkpoint', 'load_weights', 'UnreadableCheckpointError',
    'checkpoint_problem', 'find_resume_checkpoint', 'read_last_checkpoint', 'remove_partial_files',
    'mmengine_safe_globals', 'safe_load', 'state_dict_sha256', 'weights_sha256'
]

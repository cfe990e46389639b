from .environment import check_environment, environment_summary
from .errors import UserError

__all__ = ['check_environment', 'environment_summary', 'UserError']

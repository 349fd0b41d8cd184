"""Kefu projects: load a project folder (Rasa 3.x format), validate it, write a starter one."""

from bot.project.files import ProjectFiles
from bot.project.init import write_starter_project
from bot.project.loader import load_project
from bot.project.validate import validate

__all__ = ["ProjectFiles", "load_project", "validate", "write_starter_project"]

"""The ``captioning`` commands, one module each (``captioning.cli`` lists them in order).

Every command module defines ``add_parser(subparsers)``, which registers its subparser with
``set_defaults(func=run)``, and ``run(args) -> int``, whose body is the command's steps in order.
Choices and defaults come from the library (never copied here), and options several commands
share are defined once in ``options``. A command module imports only light modules at its top:
TensorFlow loads inside ``run``, so ``captioning --help`` stays fast.

To add a command: write ``captioning/commands/<name>.py`` with ``add_parser`` and ``run``, and add
the module to ``captioning.cli.COMMANDS``.
"""

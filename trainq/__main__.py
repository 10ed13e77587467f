"""`python -m trainq`: the same command as `trainq`."""

from trainq.cli import main

main()

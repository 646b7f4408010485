# These two run under Debian's /usr/bin/python3 (lib389, python-ldap), not in the venv.
collect_ignore = ["ds_instance.py", "workload.py"]

"""IRS-assisted multi-user JSCE (../shared/seeds/000_5c86833aa1606c01.txt); channel.py: the paper's
channel on the software IRS (geometry.yaml: the paper's five users and surface, eqs. (1)-(3) with
the 1-bit phases of (14b))."""

"""The domain core: plain Python, no Falcon, peewee, casbin or JWT imports."""

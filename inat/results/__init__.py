"""What a sweep or run left in its run directories, turned into answers: `inat results`,
`inat evaluate` and `inat predict`.

Everything here reads only what the trainer and the launchers wrote (see inat.rundir), on local
disk or S3; nothing talks to a cluster.
"""

"""Cluster mode: the same checks run by `linkhealth worker` processes on PostgreSQL.

    slots    which host slot a URL belongs to, and the jobs a set of due links makes (pure)
    pace     each host's limits (the seam for learned pace) and the database-paced limiter
    body     the task body: check one host slot's due links with the pipeline's check stage
    runner   procrastinate: the app, its tasks, the producer, the worker (the only module
             importing procrastinate)
    status   workers, queue depth and checks per minute (for /metrics and `linkhealth status`)

Importing this package imports nothing of procrastinate: only :mod:`.runner` does, and only
the cluster commands import it.
"""

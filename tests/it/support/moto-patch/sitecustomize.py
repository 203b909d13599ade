"""A fix for moto's RunTask, loaded only into the test harness's moto (its PYTHONPATH holds this
directory; Python imports `sitecustomize` at start-up). Nothing of prefect-ecs runs a task: it
is for the real prefect-aws ECS worker that the integration tests run against moto.

moto 5.2's EC2ContainerServiceBackend._calculate_task_resource_requirements (a staticmethod
that RunTask and StartTask call) adds each container's `memory` (or `memoryReservation`) to a
total: `0 += None`, a TypeError and HTTP 500, for a task definition that sets cpu and memory
only at task level, which AWS Fargate accepts and prefect-aws's worker registers. The wrapper
hands the original a view in which such a container counts 0 MiB; the stored task definition,
and so every Describe* answer, is unchanged.
"""
try:
    import types

    from moto.ecs import models as _ecs_models

    _Backend = _ecs_models.EC2ContainerServiceBackend
    _original = _Backend._calculate_task_resource_requirements

    def _calculate_task_resource_requirements(task_definition):
        containers = []
        for c in task_definition.container_definitions:
            if not any(k in c for k in ("memory", "memoryReservation")):
                c = dict(c, memory=0)
            containers.append(c)
        return _original(types.SimpleNamespace(container_definitions=containers))

    _Backend._calculate_task_resource_requirements = staticmethod(
        _calculate_task_resource_requirements
    )
except Exception as e:  # never stop moto from starting: the tests that need it then fail
    import sys

    print(f"prefect-ecs moto patch not applied: {e!r}", file=sys.stderr)

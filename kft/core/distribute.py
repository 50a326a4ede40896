"""The tf.distribute strategy a run trains under, and who writes what.

`--config.strategy` picks one, made once per process (kft-train's entry
point) before TensorFlow runs anything, and the model is built, compiled
and fit under its scope:

    default        one device (the first GPU, else the CPU)
    mirrored       every GPU of this machine (MirroredStrategy), else
                   every logical CPU
    multi_worker   every GPU of every machine in TF_CONFIG
                   (MultiWorkerMirroredStrategy); one kft-train per machine
    tpu            a Cloud or Colab TPU (TPUStrategy); --config.tpu names it

`data.batch_size` is the global batch: each step splits it across the
replicas, and the loss is averaged over the whole batch, so the learning
rates as given are for that batch whatever the replica count (see
kft/config.py). A batch that does not divide by the replica count (a
last, partial one) is shared out unevenly, down to none for a replica;
`global_mean` keeps its gradient one device's.

Only the chief (worker 0, or the one process of the other strategies)
writes the run folder; other workers write what they must (TensorFlow's
multi-worker checkpointing wants every worker to save) to a local
temporary folder of their own, removed when the run ends.
"""

import hashlib
import json
import os
import shutil
import tempfile

import numpy as np
import tensorflow as tf

from kft.core import accelerator
from kft.core.errors import UserError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


class _KerasReduce:
    """A strategy's `reduce`, as Keras 3.15 calls it.

    Keras reduces the scalar step logs (multi-worker: with `axis=0`); the
    strategies take no axis on a scalar, and numbers only. Keras also
    reduces the first (inputs, labels) batch of every fit and evaluate,
    with one call and no axis, only to build the model from its shapes:
    that batch comes back as the first replica's share, unreduced. The
    replicas' shares of a last, partial batch differ in size, and reducing
    them fails (two workers: a CollectiveReduceV2 "shape mismatch"; one
    machine's devices: AddN). Values that are not numbers (a boolean
    padding mask) come back as the first replica's too. Variables (the
    metrics' sums, read through here) are reduced as they are.
    """

    def reduce(self, reduce_op, value, axis):
        def one(item):
            local = self.experimental_local_results(item)[0]
            dtype = tf.as_dtype(local.dtype)
            numbers = dtype.is_floating or dtype.is_integer
            if _is_batch(item, axis) or not numbers:
                return local
            axis_here = None if local.shape.rank == 0 else axis
            return super(_KerasReduce, self).reduce(reduce_op, item, axis_here)

        return tf.nest.map_structure(one, value)


def _is_batch(item, axis):
    """Whether `reduce` got part of a batch of data with no axis: a
    per-replica tensor with dimensions, not a variable's copies."""
    return (
        axis is None
        and isinstance(item, tf.distribute.DistributedValues)
        and not isinstance(item, tf.Variable)
        and item.values[0].shape.rank != 0
    )


class _Mirrored(_KerasReduce, tf.distribute.MirroredStrategy):
    pass


class _MultiWorker(_KerasReduce, tf.distribute.MultiWorkerMirroredStrategy):
    pass


class _TPU(_KerasReduce, tf.distribute.TPUStrategy):
    pass


def check_name(name):
    if name not in STRATEGIES:
        raise UserError(
            f"bad value '{name}' for --config.strategy; valid: "
            + ", ".join(STRATEGIES)
        )


def make_strategy(name, tpu=""):
    """The strategy `name` (one of STRATEGIES); `tpu` for name "tpu"."""
    check_name(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return _Mirrored(_local_devices())
    if name == "multi_worker":
        _check_tf_config()
        return _MultiWorker()
    return _tpu_strategy(tpu)


def _local_devices():
    """Every GPU of this machine, else every logical CPU (one, unless
    set up as several with tf.config.set_logical_device_configuration)."""
    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in gpus or tf.config.list_logical_devices("CPU")]


def _check_tf_config():
    text = os.environ.get("TF_CONFIG", "")
    try:
        cluster = json.loads(text)["cluster"] if text else None
    except (ValueError, KeyError, TypeError):
        raise UserError(
            "TF_CONFIG is not JSON with a 'cluster' and a 'task' "
            "(see docs/scale-out.md)"
        ) from None
    if cluster is None:
        raise UserError(
            "--config.strategy=multi_worker needs TF_CONFIG set on every "
            "machine (see docs/scale-out.md)"
        )


def _tpu_strategy(tpu):
    """TPUStrategy over `tpu`: "" finds it (Colab, TPU_NAME), "local" is
    this TPU VM, else a TPU name or grpc:// address."""
    resolver_class = tf.distribute.cluster_resolver.TPUClusterResolver
    try:
        resolver = resolver_class(tpu=tpu or None)
        if tpu != "local":
            tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, tf.errors.OpError) as error:
        first = (str(error).strip().splitlines() or ["no TPU"])[0][:200]
        raise UserError(
            f"no TPU at --config.tpu='{tpu}' ({first}); on a TPU VM or "
            "Colab's TPU runtime use --config.tpu=local"
        ) from None
    return _TPU(resolver)


def resolve(config, device=None):
    """Fills the settings left to the device (precision, jit_compile,
    steps_per_execution, data.text_shapes) for `device` (an
    accelerator.Device; by default what `accelerator.probe` finds for
    `config.strategy`); returns the line saying what they became."""
    return accelerator.resolve(
        config, device or accelerator.probe(config.strategy)
    )


def replicas(strategy):
    return strategy.num_replicas_in_sync


def _task(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, _MultiWorker):
        return None, None
    return resolver.task_type, resolver.task_id


def is_multi_worker(strategy):
    """Whether this process is one of several workers."""
    if _task(strategy)[0] is None:
        return False
    cluster = strategy.cluster_resolver.cluster_spec()
    jobs = set(cluster.jobs) & {"chief", "worker"}
    return sum(cluster.num_tasks(job) for job in jobs) > 1


def is_chief(strategy):
    """Worker 0 (or the "chief" task) of a cluster; the only process else."""
    task_type, task_id = _task(strategy)
    if task_type is None or task_type == "chief":
        return True
    cluster = strategy.cluster_resolver.cluster_spec().as_dict()
    return task_type == "worker" and task_id == 0 and "chief" not in cluster


def output_dir(model_dir, strategy):
    """Where this process writes: `model_dir` for the chief, else a local
    temporary folder of this worker and run (`remove_output` deletes it;
    a worker restarted after a kill empties the one it left)."""
    if is_chief(strategy):
        return model_dir
    _, task_id = _task(strategy)
    run = hashlib.sha1(str(model_dir).encode()).hexdigest()[:12]
    folder = os.path.join(tempfile.gettempdir(), f"kft-worker{task_id}-{run}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    return folder


def remove_output(output, model_dir):
    """Deletes a non-chief worker's temporary folder; keeps `model_dir`."""
    if output != model_dir:
        shutil.rmtree(output, ignore_errors=True)


def any_worker(strategy, flag):
    """Whether `flag` is true on any worker: every worker must ask at the
    same step (an all-reduce), so they stop at the same step together."""
    if not is_multi_worker(strategy):
        return bool(flag)
    agreed = strategy.reduce("SUM", tf.constant(int(bool(flag))), axis=None)
    return int(agreed) > 0


def barrier(strategy):
    """Waits until every worker gets here (nothing without workers)."""
    any_worker(strategy, False)


def global_mean(loss):
    """`loss`, a per-example loss function, made to train on the mean over
    the whole global batch however its examples are shared out.

    Keras averages each replica's loss over that replica's examples and
    divides by the replica count, which is the global mean only when every
    replica has as many examples; of a last batch of 21 split 11/10, it
    would weigh the 10 more. Here each replica's gradient is scaled by
    replicas * its examples / all examples (an all-reduce per step),
    which makes the summed gradient one device's. The value is left as it
    is: Keras' loss tracker weighs each replica's by its examples already.
    """

    def weighted(labels, outputs):
        values = loss(labels, outputs)
        context = tf.distribute.get_replica_context()
        if context is None or context.num_replicas_in_sync == 1:
            return values
        here = tf.cast(tf.size(values), values.dtype)
        everywhere = context.all_reduce("SUM", here)
        share = here * context.num_replicas_in_sync / tf.maximum(everywhere, 1)
        constant = tf.stop_gradient(values)
        return constant + share * (values - constant)

    return weighted


def shard(dataset):
    """`dataset`, split across workers by element (tf.data's DATA policy):
    each worker reads every Nth batch, so none is read twice or dropped.
    Batches come from in-memory splits, so there are no files to split."""
    options = tf.data.Options()
    policy = tf.data.experimental.AutoShardPolicy.DATA
    options.experimental_distribute.auto_shard_policy = policy
    return dataset.with_options(options)


def predict_batch(model, inputs):
    """`model.predict_on_batch` of one batch that is not distributed.

    Under a strategy every replica runs the whole batch and Keras joins
    their outputs, replica by replica; the first replica's rows are the
    batch's predictions, once each.
    """
    outputs = np.asarray(model.predict_on_batch(inputs))
    return outputs[: len(tf.nest.flatten(inputs)[0])]


def predict(model, dataset):
    """Returns (labels, outputs) over a (inputs, labels) dataset."""
    labels, outputs = [], []
    for inputs, batch_labels in dataset:
        outputs.append(predict_batch(model, inputs))
        labels.append(batch_labels.numpy())
    return np.concatenate(labels), np.concatenate(outputs)

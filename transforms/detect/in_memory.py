"""The keyed steps of one query window, in memory: what CombinePerKey and CoGroupByKey give.

The batch transforms key every element by its window and let Beam group; the streaming evaluator
(`transforms.detect.query.evaluate_window`) holds one window's rows and runs the same stage
functions and CombineFns on lists, through these two helpers.
"""


def combine_per_key(pairs, combine_fn):
    """{key: output} of `combine_fn` over ``(key, value)`` pairs, as ``beam.CombinePerKey`` gives."""
    accumulators = {}
    for key, value in pairs:
        if key not in accumulators:
            accumulators[key] = combine_fn.create_accumulator()
        accumulators[key] = combine_fn.add_input(accumulators[key], value)
    return {key: combine_fn.extract_output(accumulator) for key, accumulator in accumulators.items()}


def co_group_by_key(tagged_pairs):
    """{key: {tag: [values]}} of ``{tag: (key, value) pairs}``, as ``beam.CoGroupByKey`` gives: every
    key with a value under any tag, with a (maybe empty) list for every tag."""
    grouped = {}
    for tag, pairs in tagged_pairs.items():
        for key, value in pairs:
            if key not in grouped:
                grouped[key] = {name: [] for name in tagged_pairs}
            grouped[key][tag].append(value)
    return grouped

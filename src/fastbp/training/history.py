"""The per-epoch record of a training run."""

from dataclasses import asdict, dataclass, field, fields


@dataclass
class History:
    """One entry per completed epoch in each list, in order.

    ``epoch`` counts from 1; ``lr`` is the rate used during the epoch; ``train_loss`` and
    ``train_accuracy`` are averaged over the epoch's mini-batches (with the model in
    training mode); ``test_loss`` and ``test_accuracy`` are measured after the epoch (None
    without test data); accuracies are fractions in [0, 1], None for non-classification
    losses; ``seconds`` is the epoch's wall time including the test evaluation.
    """

    epoch: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    train_loss: list = field(default_factory=list)
    train_accuracy: list = field(default_factory=list)
    test_loss: list = field(default_factory=list)
    test_accuracy: list = field(default_factory=list)
    seconds: list = field(default_factory=list)

    def append(self, **record):
        """Add one epoch: a value for every field."""
        names = {f.name for f in fields(self)}
        if set(record) != names:
            raise ValueError(f"a history record needs exactly the fields {sorted(names)}, got {sorted(record)}")
        for name, value in record.items():
            getattr(self, name).append(value)

    def __len__(self):
        return len(self.epoch)

    def last(self):
        """The latest epoch's record as a dict (ValueError when empty)."""
        if not self.epoch:
            raise ValueError("the history is empty")
        return {f.name: getattr(self, f.name)[-1] for f in fields(self)}

    def to_dict(self):
        """Plain lists, JSON-serialisable."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        """The inverse of ``to_dict``; missing fields become empty lists."""
        if not isinstance(data, dict):
            raise TypeError(f"history must be a dict of lists, got {type(data).__name__}")
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown history fields {sorted(unknown)}")
        for name, values in data.items():
            if not isinstance(values, list):
                raise TypeError(f"history field {name!r} must be a list, got {type(values).__name__}")
        history = cls(**{name: list(data.get(name, [])) for name in names})
        if len({len(getattr(history, name)) for name in names}) > 1:
            raise ValueError("history lists differ in length")
        return history

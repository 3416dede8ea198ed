"""The one search space of every study, parsed once from config's ``search_space``.

Each engine module translates a :class:`SearchSpace` into its own library's terms; no
engine-specific copy of the space exists anywhere else. A parameter has a type
(``loguniform``, ``uniform``, ``int``, ``choice``, or ``fixed``: pinned to one value, written
``{type: fixed, value: 48000}`` or as the plain value ``48000``), bounds or choices,
optional ``grid`` values for the grid engine, and an optional condition
``when: {parent: value}`` that makes it exist only while a ``choice`` parameter takes one
value (e.g. a log-Mel CNN's channel count under ``architecture: cnn``).

Example:
    >>> space = SearchSpace.from_config(DEFAULT_SEARCH_SPACE)
    >>> space.names
    ('lr', 'epochs', 'unfreeze', 'maxlen')
    >>> space["lr"].grid_values(3)
    (1e-06, 3.16e-05, 0.001)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from serhpo.config import schema_default
from serhpo.errors import UserError

ParamType = Literal["loguniform", "uniform", "int", "choice", "fixed"]
Scalar = str | int | float | bool

#: The paper's Table 2 (Golbaghi & Zhou, 2025), the schema's default of ``search_space``.
DEFAULT_SEARCH_SPACE: dict[str, dict[str, Any]] = schema_default("search_space")

PARAM_TYPES: tuple[str, ...] = ("loguniform", "uniform", "int", "choice", "fixed")
_KEYS_BY_TYPE: dict[str, set[str]] = {
    "loguniform": {"type", "low", "high", "grid", "when"},
    "uniform": {"type", "low", "high", "grid", "when"},
    "int": {"type", "low", "high", "grid", "when"},
    "choice": {"type", "choices", "grid", "when"},
    "fixed": {"type", "value"},
}
#: Keys that say what a parameter is; a type ignores those of the others (see _parse_param).
_DEFINING_KEYS = {"low", "high", "choices", "value"}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Param:
    """One hyper-parameter.

    Attributes:
        name: its key in ``search_space`` (a Python identifier).
        type: ``loguniform`` / ``uniform`` (floats), ``int`` (inclusive bounds), ``choice``,
            or ``fixed`` (one value, held in ``choices``; every engine proposes it as is).
        low: lower bound (numeric types).
        high: upper bound, inclusive (numeric types).
        choices: the allowed values (``choice``).
        grid: explicit grid values, or None to derive them from the bounds.
        when: ``(parent, value)``: the parameter exists only while ``parent`` equals ``value``.
    """

    name: str
    type: ParamType
    low: float | None = None
    high: float | None = None
    choices: tuple[Scalar, ...] | None = None
    grid: tuple[Scalar, ...] | None = None
    when: tuple[str, Scalar] | None = None

    @property
    def column(self) -> str:
        """Its column in trials.csv, ``param_<name>``."""
        return f"param_{self.name}"

    @property
    def is_categorical(self) -> bool:
        """True for ``choice`` and ``fixed`` (a choice of one value)."""
        return self.type in ("choice", "fixed")

    @property
    def is_float(self) -> bool:
        """True for ``loguniform`` and ``uniform``."""
        return self.type in ("loguniform", "uniform")

    def grid_values(self, points: int) -> tuple[Scalar, ...]:
        """The values the grid engine tries: ``grid`` if given, else ``points`` derived ones.

        ``loguniform`` gets log-spaced points rounded to 3 significant digits, ``uniform``
        evenly spaced ones, ``int`` evenly spaced integers (duplicates removed), ``choice``
        every choice.

        Example:
            >>> Param("epochs", "int", low=1, high=10).grid_values(4)
            (1, 4, 7, 10)
        """
        if self.grid is not None:
            return self.grid
        if self.is_categorical:
            assert self.choices is not None
            return self.choices
        assert self.low is not None and self.high is not None
        if self.type == "loguniform":
            return tuple(
                _round_significant(v, 3) for v in np.geomspace(self.low, self.high, points)
            )
        if self.type == "uniform":
            return tuple(float(v) for v in np.linspace(self.low, self.high, points))
        spaced = np.rint(np.linspace(self.low, self.high, points)).astype(int)
        return tuple(int(v) for v in dict.fromkeys(spaced))

    def contains(self, value: Any) -> bool:
        """True when ``value`` is allowed for this parameter."""
        if self.is_categorical:
            assert self.choices is not None
            return any(_same(value, choice) for choice in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float | np.number):
            return False
        if self.type == "int" and float(value) != int(value):
            return False
        assert self.low is not None and self.high is not None
        return self.low <= float(value) <= self.high

    def coerce(self, value: Any) -> Scalar:
        """Turn a value read back from trials.csv (or an engine) into the parameter's own type.

        Raises:
            ValueError: when the value does not belong to the parameter.

        Example:
            >>> Param("maxlen", "choice", choices=(32000, 64000)).coerce("64000")
            64000
        """
        if self.is_categorical:
            assert self.choices is not None
            for choice in self.choices:
                if _same(value, choice) or str(value) == str(choice):
                    return choice
            raise ValueError(f"{value!r} is not one of {list(self.choices)}")
        number = float(value)
        if self.type == "int":
            if number != round(number):
                raise ValueError(f"{value!r} is not an integer")
            coerced: Scalar = int(round(number))
        else:
            coerced = number
        if not self.contains(coerced):
            raise ValueError(f"{value!r} is outside [{self.low}, {self.high}]")
        return coerced


@dataclass(frozen=True)
class SearchSpace:
    """The parameters of a study, parents before the parameters that depend on them.

    Example:
        >>> space = SearchSpace.from_config({
        ...     "arch": {"type": "choice", "choices": ["cnn", "mlp"]},
        ...     "channels": {"type": "int", "low": 8, "high": 64, "when": {"arch": "cnn"}},
        ... })
        >>> space.active_names({"arch": "mlp"})
        ('arch',)
    """

    params: tuple[Param, ...]

    @classmethod
    def from_config(cls, section: Any, *, key: str = "search_space") -> SearchSpace:
        """Parse and check config's ``search_space`` mapping (None: the paper's Table 2).

        Raises:
            UserError: naming the key, what was found and what is allowed.
        """
        if section is None:
            section = DEFAULT_SEARCH_SPACE
        if not isinstance(section, Mapping) or not section:
            raise UserError(
                f"config key {key}: found {section!r}; expected a mapping of parameter name -> "
                f"definition, e.g. {{lr: {{type: loguniform, low: 1.0e-6, high: 1.0e-3}}}}. "
                f"Remove the key to use the paper's Table 2."
            )
        params = [_parse_param(str(name), spec, key=key) for name, spec in section.items()]
        _check_conditions(params, key=key)
        return cls(params=tuple(_parents_first(params)))

    @property
    def names(self) -> tuple[str, ...]:
        """Parameter names, parents before their conditional children."""
        return tuple(p.name for p in self.params)

    @property
    def columns(self) -> tuple[str, ...]:
        """The ``param_<name>`` columns of trials.csv."""
        return tuple(p.column for p in self.params)

    def __getitem__(self, name: str) -> Param:
        for param in self.params:
            if param.name == name:
                return param
        raise KeyError(name)

    def __iter__(self) -> Iterator[Param]:
        return iter(self.params)

    def fixed_values(self) -> dict[str, Scalar]:
        """The pinned parameters (type ``fixed``) and their values.

        Example:
            >>> SearchSpace.from_config({"lr": {"type": "uniform", "low": 0, "high": 1},
            ...                          "maxlen": 48000}).fixed_values()
            {'maxlen': 48000}
        """
        return {p.name: p.choices[0] for p in self.params if p.type == "fixed" and p.choices}

    def __len__(self) -> int:
        return len(self.params)

    def children(self, parent: str, value: Scalar) -> tuple[Param, ...]:
        """The parameters that exist only while ``parent`` equals ``value``."""
        return tuple(
            p for p in self.params if p.when and p.when[0] == parent and _same(p.when[1], value)
        )

    def is_active(self, param: Param, assignment: Mapping[str, Any]) -> bool:
        """True when ``param`` exists given the (parent) values in ``assignment``."""
        if param.when is None:
            return True
        parent, value = param.when
        return parent in assignment and _same(assignment[parent], value)

    def active_names(self, assignment: Mapping[str, Any]) -> tuple[str, ...]:
        """The parameters that exist for ``assignment``, in space order."""
        active: dict[str, Any] = {}
        for param in self.params:
            if self.is_active(param, active) and param.name in assignment:
                active[param.name] = assignment[param.name]
        return tuple(active)

    def check(self, assignment: Mapping[str, Any]) -> dict[str, Scalar]:
        """Check that ``assignment`` sets exactly the active parameters to allowed values.

        Returns:
            The assignment in space order, values coerced to each parameter's type.

        Raises:
            ValueError: naming the first problem.
        """
        checked: dict[str, Scalar] = {}
        for param in self.params:
            active = self.is_active(param, checked)
            if active and param.name not in assignment:
                raise ValueError(f"parameter {param.name!r} is missing")
            if not active and assignment.get(param.name) is not None:
                raise ValueError(f"parameter {param.name!r} is set but its condition is false")
            if active:
                checked[param.name] = param.coerce(assignment[param.name])
        unknown = set(assignment) - set(self.names)
        if unknown:
            raise ValueError(f"unknown parameters {sorted(unknown)}")
        return checked

    def grid(self, points: int) -> list[dict[str, Scalar]]:
        """Every grid point: the cartesian product of the grid values of the active parameters.

        The order is deterministic: the first parameter varies slowest (lexicographic).

        Example:
            >>> len(SearchSpace.from_config(DEFAULT_SEARCH_SPACE).grid(3))  # 3 x 3 x 3 x 6
            162
        """
        assignments: list[dict[str, Scalar]] = [{}]
        for param in self.params:
            expanded = []
            for assignment in assignments:
                if self.is_active(param, assignment):
                    expanded += [{**assignment, param.name: v} for v in param.grid_values(points)]
                else:
                    expanded.append(assignment)
            assignments = expanded
        return assignments


def _same(a: Any, b: Any) -> bool:
    """Equality that keeps True apart from 1 and treats numpy scalars like Python ones."""
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, str) != isinstance(b, str):
        return False
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _round_significant(value: float, digits: int) -> float:
    if value == 0:
        return 0.0
    return float(round(value, digits - 1 - math.floor(math.log10(abs(value)))))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _parse_param(name: str, spec: Any, *, key: str) -> Param:
    where = f"{key}.{name}"
    if not _NAME.match(name):
        raise UserError(
            f"config key {where}: the name {name!r} is not allowed; expected letters, digits and "
            f"underscores, not starting with a digit (it becomes a column param_{name}). Rename it."
        )
    if isinstance(spec, str | int | float | bool):
        spec = {"type": "fixed", "value": spec}  # a plain value pins the parameter
    if not isinstance(spec, Mapping):
        raise UserError(
            f"config key {where}: found {spec!r}; expected a mapping such as "
            f"{{type: loguniform, low: 1.0e-6, high: 1.0e-3}}, or one value to pin it. "
            f"null in an override file removes the parameter."
        )
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise UserError(
            f"config key {where}.type: found {kind!r}; allowed: {', '.join(PARAM_TYPES)}."
        )
    # Keys that define another type (low and high under a pin, choices under a range) are
    # left over from an earlier file's definition: config files merge key by key, so an
    # override {type: fixed, value: 3} of {type: int, low: 1, high: 10} keeps low and high.
    leftovers = _DEFINING_KEYS - _KEYS_BY_TYPE[kind]
    spec = {k: v for k, v in spec.items() if k not in leftovers}
    unknown = sorted(set(spec) - _KEYS_BY_TYPE[kind])
    if unknown:
        raise UserError(
            f"config key {where}: unknown key(s) {unknown} for type {kind}; "
            f"allowed: {sorted(_KEYS_BY_TYPE[kind])}."
        )
    when = _parse_when(spec.get("when"), where=where)
    if kind == "fixed":
        value = spec.get("value")
        if not isinstance(value, str | int | float | bool):
            raise UserError(
                f"config key {where}.value: found {value!r}; expected one string, number or "
                f"boolean (type fixed pins the parameter to it)."
            )
        param = Param(name=name, type="fixed", choices=(value,))
    elif kind == "choice":
        choices = spec.get("choices")
        if (
            not isinstance(choices, Sequence)
            or isinstance(choices, str)
            or len(choices) < 2
            or not all(isinstance(c, str | int | float | bool) for c in choices)
        ):
            raise UserError(
                f"config key {where}.choices: found {choices!r}; expected a list of at least two "
                f"strings, numbers or booleans. To pin one value, write {{type: fixed, value: "
                f"...}} or the value itself."
            )
        kinds = {type(c) for c in choices}
        if len(kinds - {int, float}) > 0 and len(kinds) > 1:
            raise UserError(
                f"config key {where}.choices: found values of mixed types {list(choices)!r}; "
                f"expected all strings, all numbers or all booleans."
            )
        if len({repr(c) for c in choices}) != len(choices):
            raise UserError(f"config key {where}.choices: found duplicates in {list(choices)!r}.")
        param = Param(name=name, type="choice", choices=tuple(choices), when=when)
    else:
        low, high = spec.get("low"), spec.get("high")
        for bound_name, bound in (("low", low), ("high", high)):
            if not _is_number(bound):
                raise UserError(
                    f"config key {where}.{bound_name}: found {bound!r}; expected a finite number."
                )
        if kind == "int" and not (float(low) == int(low) and float(high) == int(high)):
            raise UserError(
                f"config key {where}: type int needs integer bounds; found low={low!r}, "
                f"high={high!r}."
            )
        if not low < high:
            raise UserError(
                f"config key {where}: found low={low!r}, high={high!r}; expected low < high."
            )
        if kind == "loguniform" and low <= 0:
            raise UserError(
                f"config key {where}.low: found {low!r}; a loguniform parameter needs low > 0. "
                f"Use type uniform for ranges that include 0."
            )
        if kind == "int":
            low, high = int(low), int(high)
        param = Param(name=name, type=kind, low=low, high=high, when=when)
    grid = spec.get("grid")
    if grid is not None:
        if not isinstance(grid, Sequence) or isinstance(grid, str) or not grid:
            raise UserError(
                f"config key {where}.grid: found {grid!r}; expected a non-empty list of values."
            )
        bad = [value for value in grid if not param.contains(value)]
        if bad:
            allowed = (
                f"one of {list(param.choices or ())}"
                if kind == "choice"
                else f"{'integers ' if kind == 'int' else ''}within [{param.low}, {param.high}]"
            )
            raise UserError(
                f"config key {where}.grid: found {bad!r}, which the parameter does not allow; "
                f"expected {allowed}."
            )
        if len({repr(v) for v in grid}) != len(grid):
            raise UserError(f"config key {where}.grid: found duplicates in {list(grid)!r}.")
        param = Param(**{**param.__dict__, "grid": tuple(param.coerce(v) for v in grid)})
    return param


def _parse_when(when: Any, *, where: str) -> tuple[str, Scalar] | None:
    if when is None:
        return None
    if not isinstance(when, Mapping) or len(when) != 1:
        raise UserError(
            f"config key {where}.when: found {when!r}; expected one condition "
            f"{{parent_parameter: value}} on a choice parameter, e.g. {{architecture: cnn}}."
        )
    ((parent, value),) = when.items()
    if not isinstance(value, str | int | float | bool):
        raise UserError(
            f"config key {where}.when.{parent}: found {value!r}; expected one value of the "
            f"choice parameter {parent!r} (a parameter that exists under several values must "
            f"be declared once per value under different names: Ax needs a tree)."
        )
    return str(parent), value


def _check_conditions(params: list[Param], *, key: str) -> None:
    by_name = {p.name: p for p in params}
    for param in params:
        if param.when is None:
            continue
        parent_name, value = param.when
        where = f"{key}.{param.name}.when"
        parent = by_name.get(parent_name)
        if parent is None:
            raise UserError(
                f"config key {where}: found parent {parent_name!r}, which is not in {key}; "
                f"expected one of {sorted(by_name)}."
            )
        if parent.type != "choice":
            raise UserError(
                f"config key {where}: found parent {parent_name!r} of type {parent.type}; "
                f"a condition must name a choice parameter."
            )
        if not parent.contains(value):
            raise UserError(
                f"config key {where}.{parent_name}: found {value!r}; expected one of "
                f"{list(parent.choices or ())}."
            )
        chain = [param.name]
        ancestor: Param | None = parent
        while ancestor is not None:
            if ancestor.name in chain:
                raise UserError(
                    f"config key {where}: the conditions form a cycle "
                    f"({' -> '.join([*chain, ancestor.name])}); a parameter cannot depend on "
                    f"itself."
                )
            chain.append(ancestor.name)
            ancestor = by_name.get(ancestor.when[0]) if ancestor.when else None


def _parents_first(params: list[Param]) -> list[Param]:
    """Declaration order, except that a parameter follows the parameter its condition names."""
    ordered: list[Param] = []
    placed: set[str] = set()
    pending = list(params)
    while pending:  # terminates: _check_conditions rejected cycles
        waiting = []
        for param in pending:
            if param.when is None or param.when[0] in placed:
                ordered.append(param)
                placed.add(param.name)
            else:
                waiting.append(param)
        pending = waiting
    return ordered

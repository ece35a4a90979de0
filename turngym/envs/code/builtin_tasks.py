"""turngym's own programming tasks: short functions, hand-written references and hidden asserts.

They need no data file, so ``turngym/Code-v0`` works on a fresh install. Each task states a
function signature and its behaviour; the asserts cover the examples in the statement and edge
cases the statement implies (empty inputs, ties, negative numbers).
"""

from __future__ import annotations

from turngym.envs.code.tasks import CheckStep, CodeTask

# (name, statement, reference, asserts)
_SPECS: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    (
        "fizzbuzz",
        "def fizzbuzz(n: int) -> list[str]:\n"
        '    """Return the strings for 1..n: "Fizz" for multiples of 3, "Buzz" for multiples of 5,\n'
        '    "FizzBuzz" for multiples of both, otherwise the number itself."""',
        "def fizzbuzz(n):\n"
        "    out = []\n"
        "    for i in range(1, n + 1):\n"
        "        word = ('Fizz' if i % 3 == 0 else '') + ('Buzz' if i % 5 == 0 else '')\n"
        "        out.append(word or str(i))\n"
        "    return out\n",
        (
            "assert fizzbuzz(0) == []",
            "assert fizzbuzz(5) == ['1', '2', 'Fizz', '4', 'Buzz']",
            "assert fizzbuzz(15)[-1] == 'FizzBuzz'",
            "assert fizzbuzz(30).count('FizzBuzz') == 2",
        ),
    ),
    (
        "run_length",
        "def run_length(text: str) -> list[tuple[str, int]]:\n"
        '    """Run-length encode text: run_length("aaab") == [("a", 3), ("b", 1)]."""',
        "def run_length(text):\n"
        "    runs = []\n"
        "    for ch in text:\n"
        "        if runs and runs[-1][0] == ch:\n"
        "            runs[-1] = (ch, runs[-1][1] + 1)\n"
        "        else:\n"
        "            runs.append((ch, 1))\n"
        "    return runs\n",
        (
            "assert run_length('') == []",
            "assert run_length('aaab') == [('a', 3), ('b', 1)]",
            "assert run_length('abba') == [('a', 1), ('b', 2), ('a', 1)]",
            "assert run_length('zzzzzz') == [('z', 6)]",
        ),
    ),
    (
        "second_largest",
        "def second_largest(numbers: list[int]) -> int | None:\n"
        '    """The second largest *distinct* value; None when there are fewer than two distinct values."""',
        "def second_largest(numbers):\n"
        "    distinct = sorted(set(numbers))\n"
        "    return distinct[-2] if len(distinct) >= 2 else None\n",
        (
            "assert second_largest([3, 1, 2]) == 2",
            "assert second_largest([5, 5, 4]) == 4",
            "assert second_largest([7, 7]) is None",
            "assert second_largest([]) is None",
            "assert second_largest([-1, -5, -3]) == -3",
        ),
    ),
    (
        "is_balanced",
        "def is_balanced(text: str) -> bool:\n"
        '    """True when every (, [ and { in text is closed by the matching bracket in the right order;\n'
        '    other characters are ignored."""',
        "def is_balanced(text):\n"
        "    pairs = {')': '(', ']': '[', '}': '{'}\n"
        "    stack = []\n"
        "    for ch in text:\n"
        "        if ch in '([{':\n"
        "            stack.append(ch)\n"
        "        elif ch in pairs:\n"
        "            if not stack or stack.pop() != pairs[ch]:\n"
        "                return False\n"
        "    return not stack\n",
        (
            "assert is_balanced('') is True",
            "assert is_balanced('a(b[c]{d})') is True",
            "assert is_balanced('(]') is False",
            "assert is_balanced('((') is False",
            "assert is_balanced('())(') is False",
        ),
    ),
    (
        "word_counts",
        "def word_counts(text: str) -> dict[str, int]:\n"
        '    """Count the words of text, case-insensitively; words are runs of letters (a-z)."""',
        "import re\n\n"
        "def word_counts(text):\n"
        "    counts = {}\n"
        "    for word in re.findall('[a-z]+', text.lower()):\n"
        "        counts[word] = counts.get(word, 0) + 1\n"
        "    return counts\n",
        (
            "assert word_counts('') == {}",
            "assert word_counts('The cat and the hat.') == {'the': 2, 'cat': 1, 'and': 1, 'hat': 1}",
            "assert word_counts('x1y x') == {'x': 2, 'y': 1}",
        ),
    ),
    (
        "merge_intervals",
        "def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:\n"
        '    """Merge overlapping or touching closed intervals; return them sorted by start."""',
        "def merge_intervals(intervals):\n"
        "    merged = []\n"
        "    for start, end in sorted(intervals):\n"
        "        if merged and start <= merged[-1][1]:\n"
        "            merged[-1] = (merged[-1][0], max(merged[-1][1], end))\n"
        "        else:\n"
        "            merged.append((start, end))\n"
        "    return merged\n",
        (
            "assert merge_intervals([]) == []",
            "assert merge_intervals([(1, 3), (2, 6), (8, 10)]) == [(1, 6), (8, 10)]",
            "assert merge_intervals([(5, 7), (1, 5)]) == [(1, 7)]",
            "assert merge_intervals([(1, 10), (2, 3)]) == [(1, 10)]",
        ),
    ),
    (
        "digit_root",
        "def digit_root(n: int) -> int:\n"
        '    """Repeatedly sum the decimal digits of the non-negative n until one digit remains."""',
        "def digit_root(n):\n    while n >= 10:\n        n = sum(int(d) for d in str(n))\n    return n\n",
        (
            "assert digit_root(0) == 0",
            "assert digit_root(9) == 9",
            "assert digit_root(38) == 2",
            "assert digit_root(999999999999) == 9",
        ),
    ),
    (
        "rotate",
        "def rotate(items: list, k: int) -> list:\n"
        '    """Rotate items right by k places (k may be negative or larger than the length)."""',
        "def rotate(items, k):\n"
        "    if not items:\n"
        "        return []\n"
        "    k %= len(items)\n"
        "    return items[-k:] + items[:-k] if k else list(items)\n",
        (
            "assert rotate([], 3) == []",
            "assert rotate([1, 2, 3, 4], 1) == [4, 1, 2, 3]",
            "assert rotate([1, 2, 3, 4], -1) == [2, 3, 4, 1]",
            "assert rotate([1, 2, 3], 7) == [3, 1, 2]",
        ),
    ),
    (
        "primes_below",
        'def primes_below(n: int) -> list[int]:\n    """All primes p with p < n, in increasing order."""',
        "def primes_below(n):\n"
        "    if n < 3:\n"
        "        return []\n"
        "    sieve = [True] * n\n"
        "    sieve[0] = sieve[1] = False\n"
        "    for i in range(2, int(n ** 0.5) + 1):\n"
        "        if sieve[i]:\n"
        "            sieve[i * i :: i] = [False] * len(range(i * i, n, i))\n"
        "    return [i for i, is_prime in enumerate(sieve) if is_prime]\n",
        (
            "assert primes_below(2) == []",
            "assert primes_below(3) == [2]",
            "assert primes_below(20) == [2, 3, 5, 7, 11, 13, 17, 19]",
            "assert len(primes_below(100_000)) == 9592",
        ),
    ),
    (
        "roman",
        "def roman(n: int) -> str:\n"
        '    """The Roman numeral of 1 <= n <= 3999 (subtractive form: 4 is IV, 90 is XC)."""',
        "def roman(n):\n"
        "    table = [(1000, 'M'), (900, 'CM'), (500, 'D'), (400, 'CD'), (100, 'C'), (90, 'XC'),\n"
        "             (50, 'L'), (40, 'XL'), (10, 'X'), (9, 'IX'), (5, 'V'), (4, 'IV'), (1, 'I')]\n"
        "    out = ''\n"
        "    for value, letters in table:\n"
        "        count, n = divmod(n, value)\n"
        "        out += letters * count\n"
        "    return out\n",
        (
            "assert roman(1) == 'I'",
            "assert roman(4) == 'IV'",
            "assert roman(1994) == 'MCMXCIV'",
            "assert roman(3999) == 'MMMCMXCIX'",
        ),
    ),
    (
        "flatten",
        "def flatten(nested: list) -> list:\n"
        '    """Flatten arbitrarily nested lists into one list, in order; non-lists stay as they are."""',
        "def flatten(nested):\n"
        "    out = []\n"
        "    for item in nested:\n"
        "        if isinstance(item, list):\n"
        "            out.extend(flatten(item))\n"
        "        else:\n"
        "            out.append(item)\n"
        "    return out\n",
        (
            "assert flatten([]) == []",
            "assert flatten([1, [2, [3, [4]]], 5]) == [1, 2, 3, 4, 5]",
            "assert flatten([[], [[]]]) == []",
            "assert flatten(['ab', ('c',)]) == ['ab', ('c',)]",
        ),
    ),
    (
        "anagram_groups",
        "def anagram_groups(words: list[str]) -> list[list[str]]:\n"
        '    """Group words that are anagrams of each other. Each group keeps the input order, and groups\n'
        '    are ordered by the position of their first word."""',
        "def anagram_groups(words):\n"
        "    groups = {}\n"
        "    for word in words:\n"
        "        groups.setdefault(''.join(sorted(word)), []).append(word)\n"
        "    return list(groups.values())\n",
        (
            "assert anagram_groups([]) == []",
            "assert anagram_groups(['eat', 'tea', 'tan', 'ate', 'nat', 'bat']) == "
            "[['eat', 'tea', 'ate'], ['tan', 'nat'], ['bat']]",
            "assert anagram_groups(['a', 'a']) == [['a', 'a']]",
        ),
    ),
)


def _task(name: str, statement: str, reference: str, asserts: tuple[str, ...]) -> CodeTask:
    return CodeTask(
        task_id=f"builtin/{name}",
        prompt=f"Implement this function:\n\n```python\n{statement}\n```",
        steps=tuple(CheckStep(test, True) for test in asserts),
        reference=reference,
        entry_point=name,
    )


BUILTIN_TASKS: tuple[CodeTask, ...] = tuple(_task(*spec) for spec in _SPECS)
"""The built-in task set, in a fixed order (task id ``k`` of the env is ``BUILTIN_TASKS[k]``)."""

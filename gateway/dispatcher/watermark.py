"""The dispatched low-watermark: the highest seq such that it and every earlier seq are done."""

from __future__ import annotations

from collections import deque


class Watermark:
    """Seqs are added in increasing order and finish in any order."""

    def __init__(self, start: int = 0) -> None:
        self.value = start
        self._order: deque[int] = deque()
        self._done: set[int] = set()

    def __len__(self) -> int:
        return len(self._order)

    def add(self, seq: int) -> None:
        if self._order and seq <= self._order[-1]:
            raise ValueError(f"seq {seq} added after {self._order[-1]}: seqs must increase")
        self._order.append(seq)

    def done(self, seq: int) -> bool:
        """Mark `seq` finished; True when the watermark moved."""
        self._done.add(seq)
        moved = False
        order, finished = self._order, self._done
        while order and order[0] in finished:
            head = order.popleft()
            finished.discard(head)
            self.value = head
            moved = True
        return moved

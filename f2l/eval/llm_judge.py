"""LLM judge: ask a chat model behind any OpenAI-compatible endpoint to grade an answer from 0 to 10.

Unused by default (nothing leaves the machine unless a URL is given). The request is the standard
``POST {base_url}/chat/completions`` with a fixed rubric, temperature 0; the grade is the first
number in the reply, divided by 10. Standard library only.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

RUBRIC = (
    "You grade answers about a video. Compare the candidate answer with the reference answer for the "
    "same question. Reply with a single integer from 0 (wrong or unrelated) to 10 (same meaning as the "
    "reference), and nothing else."
)
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


class JudgeError(RuntimeError):
    """The endpoint could not be reached, answered with an error, or gave no grade."""


@dataclass
class LLMJudge:
    base_url: str  # e.g. http://127.0.0.1:8000/v1
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0

    def grade(self, question: str, reference: str, answer: str) -> float:
        """The judge's grade in [0, 1]."""
        body = {
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": RUBRIC},
                {
                    "role": "user",
                    "content": f"Question: {question}\nReference: {reference}\nCandidate: {answer}",
                },
            ],
        }
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        url = self.base_url.rstrip("/") + "/chat/completions"
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                reply = json.loads(response.read())
        except (urllib.error.URLError, TimeoutError, json.JSONDecodeError) as err:
            raise JudgeError(f"LLM judge at {url} failed: {err}") from err
        try:
            text = reply["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as err:
            raise JudgeError(f"LLM judge at {url} sent no chat completion: {str(reply)[:200]}") from err
        match = _NUMBER.search(text or "")
        if match is None:
            raise JudgeError(f"LLM judge at {url} gave no grade: {text[:200]!r}")
        return min(max(float(match.group()) / 10.0, 0.0), 1.0)

    def score(
        self, questions: Sequence[str], references: Sequence[str], answers: Sequence[str]
    ) -> list[float]:
        return [self.grade(q, r, a) for q, r, a in zip(questions, references, answers, strict=True)]

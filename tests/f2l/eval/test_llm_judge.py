"""The LLM-judge interface against a small OpenAI-compatible server on 127.0.0.1."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from f2l.eval.llm_judge import JudgeError, LLMJudge


@pytest.fixture()
def server():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("Authorization"), body))
            candidate = body["messages"][-1]["content"].rsplit("Candidate: ", 1)[1]
            if candidate == "broken":
                self.send_response(500)
                self.end_headers()
                return
            grade = {"red": "10", "blue": "Grade: 2"}.get(candidate, "no idea")
            payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": grade}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    httpd.shutdown()
    httpd.server_close()


def test_grades_come_back_scaled_and_the_request_is_openai_shaped(server):
    url, seen = server
    judge = LLMJudge(url, model="judge-model", api_key="k", timeout_s=5)
    assert judge.score(["what color?", "what color?"], ["red", "red"], ["red", "blue"]) == [1.0, 0.2]
    path, auth, body = seen[0]
    assert path == "/v1/chat/completions" and auth == "Bearer k"
    assert body["model"] == "judge-model" and body["temperature"] == 0
    assert [m["role"] for m in body["messages"]] == ["system", "user"]


def test_errors_are_judge_errors(server):
    url, _ = server
    judge = LLMJudge(url, model="m", timeout_s=5)
    with pytest.raises(JudgeError, match="no grade"):
        judge.grade("q", "r", "green")
    with pytest.raises(JudgeError, match="failed"):
        judge.grade("q", "r", "broken")
    with pytest.raises(JudgeError, match="failed"):
        LLMJudge("http://127.0.0.1:9/v1", model="m", timeout_s=2).grade("q", "r", "a")

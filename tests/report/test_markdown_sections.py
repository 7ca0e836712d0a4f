"""The Method section explains only what the report shows."""

from gam_bench.report.markdown import method


def test_method_notes_follow_the_report_sections():
    both, speed, ppl = method(["throughput", "perplexity"]), method(["throughput"]), method(["perplexity"])
    assert "**Time slope interval**" in both and "**Perplexity**" in both
    assert "**Perplexity**" not in speed and "**Time slope interval**" in speed
    assert "**Time slope interval**" not in ppl and "token-weighted" in ppl

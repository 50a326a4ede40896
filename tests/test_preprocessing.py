"""Text cleaning in TF ops (training and serving share it)."""

import pytest
import tensorflow as tf

from kft.model import preprocessing

CASES = [
    "It&#039;s fine",
    "It&#39;s &#x27;ok&#X27;",
    "&quot;great&quot; &amp; cheap",
    "&amp;quot; stays one level",
    "a\n\t  b  ",
    "  leading and trailing  ",
    "I&rsquo;m &ldquo;done&rdquo; &hellip; &ndash; &mdash; &nbsp;x",
    "back&#92;slash and &lt;tag&gt;",
    "no entity & semicolon; here",
    "café naïve 日本語",
    "",
    "&#128512; an emoji it does not know",
]


@pytest.mark.parametrize("text", CASES[:-1])
def test_clean_text_matches_html_unescape(text):
    got = preprocessing.clean_text(tf.constant([text])).numpy()[0]
    assert got.decode("utf-8") == preprocessing.python_clean_text(text)


def test_unknown_entities_stay_as_they_are():
    got = preprocessing.clean_text(tf.constant([CASES[-1]])).numpy()[0]
    assert got.decode("utf-8") == CASES[-1]


def test_clean_text_runs_in_a_graph():
    fn = tf.function(preprocessing.clean_text).get_concrete_function(
        tf.TensorSpec([None], tf.string)
    )
    out = fn(tf.constant(["a&amp;b", "x  y"])).numpy().tolist()
    assert out == [b"a&b", b"x y"]

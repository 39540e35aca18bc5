"""labkit.text: the one sentence splitter and the text helpers."""

from labkit import text
from labkit.anchor import split_sentences as anchor_split
from labkit.summarize import metrics


def test_one_splitter_everywhere():
    assert anchor_split is text.split_sentences
    assert metrics.one_sentence_per_line is text.one_sentence_per_line


def test_abbreviations_numbers_and_initials_do_not_split():
    got = text.split_sentences("J. R. R. Tolkien wrote e.g. this at 3.5 p.m. on Monday. Next!")
    assert got == ["J. R. R. Tolkien wrote e.g. this at 3.5 p.m. on Monday.", "Next!"]


def test_transcripts_split_before_lowercase_and_drop_speakers():
    transcript = "Grad A: OK . so we start with the nets . Right .\nProfessor B: yeah , sure ."
    assert text.transcript_sentences(transcript, min_words=1) == [
        "OK .",
        "so we start with the nets .",
        "Right .",
        "yeah , sure .",
    ]
    assert text.transcript_sentences(transcript, min_words=5) == ["so we start with the nets ."]


def test_one_sentence_per_line_keeps_line_breaks():
    assert text.one_sentence_per_line("A b. C d?\nE f") == "A b.\nC d?\nE f"
    assert text.one_sentence_per_line("") == ""
    assert text.word_count(" two  words ") == 2

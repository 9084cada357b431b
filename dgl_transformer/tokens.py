"""Special token ids, fixed in one place for every vocabulary in the project.

Every vocabulary (toy digit tasks, the Multi30k subword model) reserves the first four ids:

==========  ==  ==========================================================
name        id  meaning
==========  ==  ==========================================================
``PAD``     0   never fed to the graph model; only the dense reference pads
``BOS``     1   first decoder input token
``EOS``     2   end of a target sentence; decoding stops when it is produced
``UNK``     3   a piece the vocabulary does not know
==========  ==  ==========================================================
"""

PAD: int = 0
BOS: int = 1
EOS: int = 2
UNK: int = 3
SPECIALS: tuple[str, ...] = ("<pad>", "<s>", "</s>", "<unk>")
NUM_SPECIALS: int = len(SPECIALS)

"""The generated text a tokenizer is trained on and a quantizer calibrates with (no download).

Pseudo-English (everyday words and made-up ones), numbers, punctuation, a little code and ChatML
chat turns, from a seeded generator: the same seed gives the same text everywhere. Used by
bench.model.prepare (the tiny model's tokenizer) and bench.model.quantize (llmcompressor's calibration set).
"""

from __future__ import annotations

import random

# Special tokens of the locally trained tokenizer, at ids 0..4 (the trainer puts them first).
BOS, EOS, PAD, IM_START, IM_END = "<|bos|>", "<|eos|>", "<|pad|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (BOS, EOS, PAD, IM_START, IM_END)

# Words the generated training text is made of (everyday English, numbers, a little code and
# chat), so the tokenizer learns merges that look like a real one's. Written for this project.
_WORDS = """
the of and to a in is it you that he was for on are with as I his they be at one have this
from or had by hot but some what there we can out other were all your when up use word how
said an each she which do their time if will way about many then them would write like so
these her long make thing see him two has look more day could go come did my sound no most
number who over know water than call first people may down side been now find any new work
part take get place made live where after back little only round man year came show every
good me give our under name very through just form much great think say help low line before
turn cause same mean differ move right boy old too does tell sentence set three want air well
also play small end put home read hand port large spell add even land here must big high such
follow act why ask men change went light kind off need house picture try us again animal point
mother world near build self earth father head stand own page should country found answer school
grow study still learn plant cover food sun four thought let keep eye never last door between
city tree cross since hard start might story saw far sea draw left late run while press close
night real life few stop open seem together next white children begin got walk example ease
paper often always music those both mark book letter until mile river car feet care second group
carry took rain eat room friend began idea fish mountain north once base hear horse cut sure
watch color face wood main enough plain girl usual young ready above ever red list though feel
talk bird soon body dog family direct pose leave song measure state product black short numeral
class wind question happen complete ship area half rock order fire south problem piece told knew
pass farm top whole king size heard best hour better true during hundred am remember step early
hold west ground interest reach fast five sing listen six table travel less morning ten simple
several vowel toward war lay against pattern slow center love person money serve appear road map
science rule govern pull cold notice voice fall power town fine certain fly unit lead cry dark
machine note wait plan figure star box noun field rest correct able pound done beauty drive stood
contain front teach week final gave green oh quick develop sleep warm free minute strong special
mind behind clear tail produce fact street inch lot nothing course stay wheel full force blue
object decide surface deep moon island foot yet busy test record boat common gold possible plane
age dry wonder laugh thousand ago ran check game shape yes cool miss brought heat snow bed bring
sit perhaps fill east weight language among model token request server latency throughput cost
"""
_SYLLABLES = (
    "ka ri to ne mu sa le vo pi da zen tor mil ras quo bel fin gar hul jen kos lum nar pex "
    "qui ros sul tam urb vek wil xan yor zul bra cle dro fri glo pra spu tre vla stri"
).split()
_CODE_LINES = (
    "def forward(self, x):\n    return self.proj(x) + x\n",
    "for i in range(10):\n    total += values[i] * 2\n",
    'print(f"{name}: {value:.3f}")\n',
    "if (count > 0 && ready) { run(); }\n",
    "x = np.zeros((128, 256), dtype=np.float32)\n",
)


def training_corpus(seed: int = 0, vocab_size: int = 2048) -> str:
    """Deterministic pseudo-English text (plus numbers, punctuation, code and chat turns) to
    train the tokenizer on; it grows with the vocabulary (max(48 KB, 24 bytes per entry), and
    vocab_size / 2 made-up words) so BPE finds enough merges. Trains in about a second."""
    rng = random.Random(seed)
    words = _WORDS.split()
    target_bytes = max(48_000, 24 * vocab_size)
    pseudo = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))) for _ in range(vocab_size // 2)]
    parts: list[str] = []
    size = 0
    while size < target_bytes:
        roll = rng.random()
        if roll < 0.06:
            piece = rng.choice(_CODE_LINES)
        elif roll < 0.12:
            q = " ".join(rng.choice(words) for _ in range(rng.randint(4, 10)))
            a = " ".join(rng.choice(words) for _ in range(rng.randint(6, 16)))
            piece = f"{IM_START}user\n{q.capitalize()}?{IM_END}\n{IM_START}assistant\n{a.capitalize()}.{IM_END}\n"
        else:
            n = rng.randint(5, 18)
            sent = [
                rng.choice(pseudo) if rng.random() < 0.25
                else str(rng.randint(0, 2048)) if rng.random() < 0.05
                else rng.choice(words)
                for _ in range(n)
            ]
            piece = " ".join(sent).capitalize() + rng.choice([". ", ". ", "! ", "? ", ", and ", ".\n"])
        parts.append(piece)
        size += len(piece)
    return "".join(parts)

#!/usr/bin/env python3
"""Tokenizer fixtures made by the Hugging Face tokenizers library itself, for
tests/ref/test_tokenizers_match_hf.py: several small tokenizers are trained from
scratch on a corpus written below (nothing is downloaded), saved with
Tokenizer.save, and the library's own ids and decodes of a list of hard strings
are recorded.

usage: make_tokenizer_fixtures.py OUTDIR [NAME ...]

writes OUTDIR/<name>/tokenizer.json and OUTDIR/<name>/expected.json, where
expected.json is {"tokenizers": version, "cases": [{"text", "ids" (encode with
special tokens), "ids_no_special", "decoded" (decode(ids_no_special,
skip_special_tokens=False)), "decoded_skip" (decode(ids,
skip_special_tokens=True))}]}. Copy the folders to tests/data/hf/tokenizers/.

Tokenizers (each under ~100 KB: small vocabularies):
  gpt2_bytelevel      ByteLevel BPE as GPT-2 (<|endoftext|>)
  llama3_bytelevel    Split (Llama-3 / Qwen2 pattern) + ByteLevel(use_regex=False), BPE
                      ignore_merges, added specials after the vocab, <|begin_of_text|> template
  llama2_metaspace    NFC, Metaspace(prepend_scheme=first, split=False), BPE byte_fallback +
                      <unk>, <s> template, Replace/ByteFallback/Fuse/Strip decoder
  llama2_legacy       the same vocabulary with the legacy Prepend + Replace normalizer
  metaspace_first_split  Strip normalizer, Punctuation + Metaspace(first, split=True)
  bert_wordpiece      BertNormalizer (lowercase, strip accents), BertPreTokenizer, WordPiece,
                      [CLS] $A [SEP] template, WordPiece decoder
  bert_cased          BertNormalizer (cased, strip_accents null), BertProcessing
  roberta_bytelevel   ByteLevel(add_prefix_space=True) BPE, RobertaProcessing, <mask> lstrip
  misc_bpe            NFKC/Replace/Strip/Lowercase/NFD/StripAccents, WhitespaceSplit +
                      Punctuation + Digits, BPE with ## prefix and </w> suffix, BPEDecoder,
                      added tokens with single_word / rstrip / normalized
  wordpiece_whitespace  NFKD + StripAccents + Lowercase, Whitespace + Split(merged_with_previous)
"""
import json
import os
import sys

try:
    import tokenizers
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers import processors, trainers
except ImportError:
    sys.exit("make_tokenizer_fixtures.py needs the Hugging Face 'tokenizers' package (pip install tokenizers)")

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")

# The training corpus: plain English, code, numbers, some accents. No emoji and no
# CJK, so those reach byte fallback, <unk> or byte-level pieces at encode time.
CORPUS = """\
The quick brown fox jumps over the lazy dog. The dog doesn't care; it's sleeping.
I'm sure they'll come back, and we've got time: she'd said so, hadn't she?
DON'T SHOUT! We can't hear you over the noise of the engines and the wind.
Representations of neural networks are compared with centered kernel alignment.
Canonical correlation analysis finds directions of maximal correlation between two sets.
A linear probe is trained on frozen features to predict the labels of the samples.
The model was trained for 90 epochs with a batch size of 256 and a learning rate of 0.1.
In 2024, 1,234,567 people visited the museum; 3.14159 is approximately pi.
def forward(self, x):
    return self.proj(torch.relu(self.fc(x))) ** 2  # two layers
for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }
if __name__ == "__main__":
    main(sys.argv[1:])
Café, naïve, résumé, déjà vu, façade, coöperate, Zürich, São Paulo, Ångström.
El niño comió mañana; la señora está aquí. Où est la gare? Straße, Größe, übermäßig.
Hello, world! Hello again, world. Hello there; general greetings to the world.
Tokenizers split text into words, words into subwords, and subwords into identifiers.
Whitespace matters:  two spaces,   three spaces,\ttabs\tand\nnew lines.
https://example.com/path?query=value&other=1 and user@example.org are not words.
Numbers like 42, 007, 1e-9, 65536 and 3.5% appear in tables and in prose alike.
The running runner ran; unbelievable, unaffable and unhappily are long words.
"""
CORPUS_LINES = [line for line in CORPUS.split("\n") if line] * 3

# Hard strings: unicode, accents (composed and decomposed), whitespace runs,
# tabs and newlines, emoji, CJK, code, contractions, digit runs, empty.
HARD = [
    "",
    " ",
    "   ",
    "Hello, world!",
    "hello world",
    "  leading spaces and  double  spaces",
    "trailing spaces   ",
    "tabs\tand\ttabs\t\t\tmore",
    "new\nlines\n\nand\r\nCRLF\n",
    "\n\n\n",
    " \n \t x",
    "naïve café — déjà vu",
    "nai\u0308ve cafe\u0301",
    "Ångström Å Å",
    "İstanbul ıi ß STRASSE ﬁne ﬂow",
    "ＦＵＬＬＷＩＤＴＨ １２３",
    "emoji 🤖🚀 and 👩‍👩‍👧 family 🇫🇷 flag",
    "中文字符 and 日本語のテキスト, 한국어",
    "مرحبا بالعالم שלום",
    "हिन्दी भाषा",
    "def f(x):\n\treturn x**2  # comment",
    "for (int i=0;i<n;i++){a[i]=b[i]*2;}",
    "I'm sure they'll say DON'T, we've WON'T, she'd, it's",
    "I'M HE'LL Y'ALL'RE",
    "1234567890 12 123 1234 3.14159 2024-01-01 1,000,000",
    "a1b22c333d4444",
    "https://example.com/a?b=c&d=e",
    "MixedCASE words AND Capitals",
    "unaffable unbelievable supercalifragilisticexpialidocious",
    "zero\u200bwidth joiner\u200d and nbsp\u00a0here and ideographic\u3000space",
    "control\x01char\x7f and \ufffd replacement",
    "ellipsis… “quotes” ‘single’ – dash — em",
    "x" * 120,
    "ThisIsAVeryLongIdentifierWithoutSpacesThatGoesOnAndOnAndOn",
]


def special_texts(specials):
    """Texts with the tokenizer's own special tokens inside."""
    out = []
    for s in specials:
        out += [f"{s}", f"{s}hello", f"hello {s} world", f"a{s}b{s}", f"  {s}  x"]
    if len(specials) > 1:
        out.append("".join(specials) + " text " + " ".join(reversed(specials)))
    return out


def train(tok, trainer):
    tok.train_from_iterator(CORPUS_LINES, trainer=trainer)
    return tok


def patched(tok, edit):
    """Apply edit(dict) to the tokenizer's JSON and load it again with the library,
    so the fixture holds exactly the configuration meant."""
    js = json.loads(tok.to_str())
    edit(js)
    return Tokenizer.from_str(json.dumps(js))


def bytelevel_trainer(vocab_size, specials=()):
    return trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=list(specials),
                               initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)


def gpt2_bytelevel():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    train(tok, bytelevel_trainer(700, ["<|endoftext|>"]))
    return tok, ["<|endoftext|>"]


def llama3_bytelevel():
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    train(tok, bytelevel_trainer(700))
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"]
    tok.add_special_tokens(specials)  # ids after the vocabulary, as Llama-3's
    bos = tok.token_to_id("<|begin_of_text|>")
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B:1",
                                      special_tokens=[("<|begin_of_text|>", bos)])])

    def edit(js):
        js["model"]["ignore_merges"] = True
    return patched(tok, edit), specials


BYTE_TOKENS = [f"<0x{b:02X}>" for b in range(256)]
LLAMA2_DECODER = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                    decoders.Strip(" ", 1, 0)])


def llama2_base(normalizer, pre_tokenizer):
    """BPE with <unk>, <s>, </s> and the 256 <0xNN> byte tokens in the vocabulary
    (only the first three are added tokens, as in Llama-2's tokenizer.json)."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = LLAMA2_DECODER
    train(tok, trainers.BpeTrainer(vocab_size=900, min_frequency=2, special_tokens=["<unk>", "<s>", "</s>"] + BYTE_TOKENS,
                                   show_progress=False))
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B:1",
                                                       special_tokens=[("<s>", bos)])

    def edit(js):
        js["added_tokens"] = [t for t in js["added_tokens"] if t["content"] not in BYTE_TOKENS]
        js["model"]["byte_fallback"] = True
        js["model"]["fuse_unk"] = True
        js["model"]["unk_token"] = "<unk>"
    return patched(tok, edit)


def llama2_metaspace():
    tok = llama2_base(normalizers.NFC(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False))
    return tok, ["<s>", "</s>", "<unk>"]


def llama2_legacy():
    tok = llama2_base(normalizers.NFC(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False))

    def edit(js):  # the same vocabulary under the legacy normalizer, no pre-tokenizer
        js["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "▁"},
            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
        js["pre_tokenizer"] = None
    return patched(tok, edit), ["<s>", "</s>", "<unk>"]


def metaspace_first_split():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.normalizer = normalizers.Strip(left=True, right=False)
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    train(tok, trainers.BpeTrainer(vocab_size=600, min_frequency=2, special_tokens=["<unk>", "<pad>", "</s>"],
                                   show_progress=False))
    return tok, ["</s>", "<pad>"]


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def bert_wordpiece():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=True,
                                                lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##")
    train(tok, trainers.WordPieceTrainer(vocab_size=600, min_frequency=2, special_tokens=BERT_SPECIALS,
                                         show_progress=False))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                       special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    return tok, BERT_SPECIALS


def bert_cased():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=20))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True, strip_accents=None,
                                                lowercase=False)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    train(tok, trainers.WordPieceTrainer(vocab_size=600, min_frequency=2, special_tokens=BERT_SPECIALS,
                                         show_progress=False))
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    return tok, ["[CLS]", "[SEP]", "[MASK]"]


def roberta_bytelevel():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tok.decoder = decoders.ByteLevel()
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    train(tok, bytelevel_trainer(700, specials))
    tok.add_special_tokens([AddedToken("<mask>", lstrip=True, rstrip=False, normalized=False, special=True)])
    # (sep, cls) positionally: tokenizers 0.23 takes no keywords for them
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")),
                                                      trim_offsets=True, add_prefix_space=True)

    def edit(js):
        for t in js["added_tokens"]:
            if t["content"] == "<mask>":
                t["lstrip"] = True
    return patched(tok, edit), specials


def misc_bpe():
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##", end_of_word_suffix="</w>"))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(r"\s+"), " "),
                                           normalizers.Strip(), normalizers.Lowercase(), normalizers.NFD(),
                                           normalizers.StripAccents()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                                 pre_tokenizers.Punctuation(behavior="contiguous"),
                                                 pre_tokenizers.Digits(individual_digits=True)])
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    train(tok, trainers.BpeTrainer(vocab_size=600, min_frequency=2, special_tokens=["[UNK]", "[PAD]"],
                                   continuing_subword_prefix="##", end_of_word_suffix="</w>", show_progress=False))
    tok.add_tokens([AddedToken("new york", single_word=True, normalized=True),
                    AddedToken("<sep>", lstrip=False, rstrip=True, normalized=False)])
    tok.add_special_tokens([AddedToken("[EOS]", special=True, normalized=False)])

    def edit(js):
        js["model"]["continuing_subword_prefix"] = "##"
        js["model"]["end_of_word_suffix"] = "</w>"
    extra = ["New York is big; new yorker", "a <sep>  b<sep>c", "[EOS] x [EOS]"]
    return patched(tok, edit), ["[EOS]", "[PAD]"], extra


def wordpiece_whitespace():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=12))
    tok.normalizer = normalizers.Sequence([normalizers.NFKD(), normalizers.StripAccents(), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Whitespace(),
        pre_tokenizers.Split(Regex(r"\d"), behavior="merged_with_previous", invert=False)])
    tok.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    train(tok, trainers.WordPieceTrainer(vocab_size=500, min_frequency=2, special_tokens=BERT_SPECIALS,
                                         show_progress=False))
    tok.post_processor = processors.BertProcessing(("[SEP]", tok.token_to_id("[SEP]")),
                                                   ("[CLS]", tok.token_to_id("[CLS]")))
    return tok, ["[SEP]", "[MASK]"]


BUILDERS = {f.__name__: f for f in [gpt2_bytelevel, llama3_bytelevel, llama2_metaspace, llama2_legacy,
                                     metaspace_first_split, bert_wordpiece, bert_cased, roberta_bytelevel, misc_bpe,
                                     wordpiece_whitespace]}


def write_expected(path, tok, texts):
    cases = []
    for text in texts:
        ids = tok.encode(text, add_special_tokens=True).ids
        ids_ns = tok.encode(text, add_special_tokens=False).ids
        cases.append({"text": text, "ids": ids, "ids_no_special": ids_ns,
                      "decoded": tok.decode(ids_ns, skip_special_tokens=False),
                      "decoded_skip": tok.decode(ids, skip_special_tokens=True)})
    with open(path, "w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(f' "tokenizers": {json.dumps(tokenizers.__version__)},\n')
        f.write(' "cases": [\n' + ",\n".join("  " + json.dumps(c, ensure_ascii=False) for c in cases) + "\n ]\n}\n")
    return len(cases)


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    outdir, names = argv[1], argv[2:] or list(BUILDERS)
    unknown = [n for n in names if n not in BUILDERS]
    if unknown:
        print(f"unknown tokenizer(s): {', '.join(unknown)}; known: {', '.join(BUILDERS)}", file=sys.stderr)
        return 2
    print(f"tokenizers {tokenizers.__version__}; writing {len(names)} tokenizers to {outdir}")
    failed = []
    for name in names:
        try:
            built = BUILDERS[name]()
            tok, specials = built[0], built[1]
            extra = built[2] if len(built) > 2 else []
            d = os.path.join(outdir, name)
            os.makedirs(d, exist_ok=True)
            tok_path = os.path.join(d, "tokenizer.json")
            tok.save(tok_path, pretty=True)
            # the expected ids come from the saved file, loaded again
            saved = Tokenizer.from_file(tok_path)
            n = write_expected(os.path.join(d, "expected.json"), saved, HARD + special_texts(specials) + extra)
            size = os.path.getsize(tok_path)
            warn = "  (over 100 KB)" if size > 100_000 else ""
            print(f"  {name:24s} vocab {saved.get_vocab_size(with_added_tokens=True):5d}  "
                  f"tokenizer.json {size / 1000:6.1f} KB  {n} cases{warn}")
        except Exception as e:  # report and go on with the others
            failed.append(name)
            print(f"  {name:24s} FAILED: {type(e).__name__}: {e}", file=sys.stderr)
    print(f"{len(names) - len(failed)} written, {len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""Harmful-request detection for customer input, in Chinese and English.

A customer asking the bot for help to hurt someone (`violence`), to cheat a shop, a bank or a person
(`fraud`), for another person's personal data or orders (`privacy`), with drugs, gambling, fake invoices,
counterfeits, smuggling or hacking (`illegal`), for sexual content or services (`sexual`), for opinions or
content on sensitive political topics (`politics`), for insults (`abuse`); and a customer saying they want to
hurt themselves (`self_harm`, which the runtime hands to a person).

The rules are safety/data/harm.txt (a project may add its own files), in the format of
safety/data/injection.txt and read over the same normalised views (injection.py): `en` patterns see ASCII
words with l33t, look-alike letters, typos and run-together words undone, `zh` patterns see simplified
ideographs without spaces or in-sentence punctuation, `raw` patterns the folded text. A rule id is
`category.name` ("violence.weapons", "fraud.phishing"). A message is blocked when the rules of one category
add up to the threshold (1.0); the verdict names that category and its strongest rule, and its reason lists
rule ids only, never the text (verdicts end up in traces and logs).

Most rules pair a request ("how do I", "teach me", "怎么", "教我", "帮我") with a harmful object in one
pattern; objects that are harmful on their own ("pipe bomb", "洗钱", "钓鱼网站" being built) need no request.
Customer-service look-alikes stay out by construction: "kill the auto-renewal", "手机炸屏了", "how do I report
a stolen card", "帮我老公的订单改个地址", "台湾能发货吗" match nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import cache
from importlib import resources
from pathlib import Path

from bot.errors import ProjectError
from safety.files import read_text_file
from safety.injection import (
    InjectionRule,
    RuleAssessment,
    RuleCheck,
    RuleDraft,
    WordsView,
    apply_statement,
    compact_view,
    compile_rules,
    decoded_payloads,
    logical_lines,
    matched_weights,
    parse_weight,
    raw_view,
    reveal,
    rule_vocabulary,
)

NAME = "harm"
THRESHOLD = 1.0
# Every category a rule may name; on a tie (same summed weight, same strongest rule) the earlier one decides,
# so a message that is both a cry for help and a threat is handed to a person.
CATEGORIES = ("self_harm", "violence", "sexual", "fraud", "illegal", "privacy", "abuse", "politics")

_RULE_ID = re.compile(r"([a-z][a-z_]*)\.([a-z][a-z0-9_]*)")

# Traditional forms of the characters the Chinese rules use; compact_view already maps the injection rules'
# characters. Pairs of (traditional, simplified).
_TRADITIONAL_PAIRS = (
    "醜丑 丟丢 嚴严 豐丰 麗丽 烏乌 書书 爭争 虧亏 親亲 僅仅 從从 倉仓 眾众 傘伞 偉伟 優优 側侧 偵侦 債债 傾倾 "
    "償偿 儲储 傳传 傷伤 偽伪 體体 俠侠 兒儿 蘭兰 關关 興兴 養养 獸兽 內内 馮冯 衝冲 決决 況况 淨净 減减 鳳凤 "
    "憑凭 擊击 劉刘 創创 刪删 別别 劇剧 劍剑 辦办 務务 動动 勁劲 勢势 勞劳 華华 協协 單单 賣卖 盧卢 衛卫 卻却 "
    "廠厂 廳厅 歷历 曆历 厲厉 壓压 厭厌 廁厕 縣县 參参 雙双 變变 敘叙 葉叶 號号 嘆叹 嚇吓 呂吕 嗎吗 吳吴 員员 "
    "唄呗 響响 嘩哗 噴喷 團团 園园 圍围 圖图 圓圆 聖圣 場场 壞坏 塊块 堅坚 壇坛 墳坟 墮堕 牆墙 墻墙 殼壳 處处 "
    "備备 復复 複复 夠够 頭头 誇夸 夾夹 奪夺 奮奋 獎奖 妝妆 婦妇 媽妈 娛娱 孌娈 嬰婴 孫孙 學学 寧宁 寶宝 實实 "
    "寵宠 審审 憲宪 寬宽 賓宾 對对 尋寻 導导 壽寿 將将 爾尔 塵尘 嘗尝 層层 屬属 歲岁 崗岗 島岛 嶺岭 嶽岳 幣币 "
    "帥帅 師师 帳账 帶带 幫帮 庫库 應应 廟庙 龐庞 廢废 開开 異异 棄弃 張张 彌弥 彎弯 彈弹 強强 歸归 當当 錄录 "
    "徹彻 徑径 憶忆 憂忧 懷怀 態态 憐怜 總总 戀恋 惡恶 惱恼 懸悬 驚惊 懼惧 慘惨 懲惩 憤愤 戲戏 戰战 戶户 撲扑 "
    "執执 擴扩 掃扫 揚扬 擾扰 撫抚 拋抛 搶抢 護护 報报 擔担 擬拟 擁拥 攔拦 撥拨 擇择 掛挂 擋挡 擠挤 揮挥 撈捞 "
    "損损 撿捡 換换 據据 擲掷 攬揽 攪搅 攜携 攝摄 擺摆 搖摇 攤摊 撐撑 敵敌 數数 齋斋 鬥斗 斷断 無无 舊旧 時时 "
    "顯显 晉晋 曬晒 曉晓 暈晕 暫暂 術术 機机 殺杀 雜杂 權权 條条 來来 楊杨 構构 槍枪 櫃柜 標标 欄栏 樹树 樣样 "
    "橋桥 夢梦 檢检 樓楼 歡欢 歐欧 殲歼 殘残 毆殴 毀毁 畢毕 斃毙 氣气 匯汇 漢汉 汙污 湯汤 溝沟 沒没 淚泪 潑泼 "
    "澤泽 潔洁 淺浅 濁浊 測测 濟济 瀏浏 渾浑 濃浓 塗涂 濤涛 漲涨 漸渐 滲渗 溫温 灣湾 濕湿 潰溃 滾滚 滿满 濾滤 "
    "濫滥 灘滩 滅灭 燈灯 靈灵 災灾 爐炉 點点 煉炼 爛烂 煙烟 煩烦 燒烧 熱热 愛爱 爺爷 牽牵 犢犊 狀状 猶犹 獨独 "
    "狹狭 獅狮 獄狱 獵猎 豬猪 貓猫 獻献 環环 現现 瑪玛 電电 畫画 暢畅 療疗 瘋疯 癱瘫 瘓痪 鹽盐 監监 蓋盖 盜盗 "
    "盤盘 著着 瞞瞒 礦矿 碼码 磚砖 礎础 確确 礙碍 禍祸 離离 種种 積积 稱称 稅税 穩稳 窮穷 竊窃 竅窍 競竞 筆笔 "
    "籠笼 築筑 簽签 簡简 類类 糧粮 緊紧 糾纠 紅红 纖纤 約约 級级 紀纪 純纯 納纳 縱纵 紛纷 紙纸 紋纹 線线 練练 "
    "組组 細细 織织 終终 紹绍 經经 綁绑 結结 繞绕 繪绘 給给 絡络 絕绝 統统 繼继 續续 維维 綿绵 綜综 綠绿 緝缉 "
    "緩缓 編编 緣缘 纏缠 縊缢 縮缩 網网 羅罗 罰罚 罷罢 職职 聯联 腸肠 膚肤 腎肾 腫肿 脅胁 勝胜 膽胆 膠胶 腦脑 "
    "髒脏 臟脏 臉脸 捨舍 艦舰 艷艳 豔艳 藝艺 節节 蘆芦 蘇苏 蘋苹 範范 薦荐 蕩荡 藥药 獲获 蘿萝 營营 藍蓝 虜虏 "
    "慮虑 虛虚 蟲虫 雖虽 蠻蛮 補补 襲袭 裝装 裏里 裡里 見见 觀观 規规 視视 覽览 覺觉 觸触 譽誉 計计 訂订 認认 "
    "討讨 讓让 訓训 議议 訊讯 記记 講讲 許许 論论 諷讽 設设 訪访 證证 評评 識识 詐诈 訴诉 診诊 詆诋 詞词 譯译 "
    "試试 詩诗 誠诚 話话 詢询 該该 詳详 語语 誤误 誘诱 說说 請请 諾诺 讀读 課课 誰谁 調调 諒谅 談谈 謀谋 謊谎 "
    "謂谓 謎谜 謝谢 謠谣 謹谨 譚谭 譜谱 貝贝 負负 財财 責责 敗败 貨货 質质 販贩 貪贪 貧贫 購购 貫贯 賤贱 貼贴 "
    "貴贵 貸贷 費费 賀贺 賊贼 資资 賭赌 賞赏 賠赔 賴赖 贅赘 賺赚 賽赛 讚赞 贈赠 趙赵 趕赶 趨趋 躍跃 踐践 蹤踪 "
    "車车 軌轨 輪轮 軟软 轟轰 載载 較较 輛辆 輩辈 輸输 辭辞 邊边 達达 遷迁 過过 運运 還还 這这 進进 遠远 違违 "
    "連连 遲迟 適适 選选 遞递 邏逻 遺遗 鄧邓 郵邮 鄰邻 鄭郑 醬酱 釋释 釣钓 鈔钞 鐘钟 鋼钢 鑰钥 錢钱 鐵铁 鉈铊 "
    "銅铜 銀银 鋪铺 鏈链 銷销 鎖锁 鍋锅 錯错 鍵键 鎮镇 鏡镜 長长 門门 閃闪 閉闭 問问 闖闯 間间 悶闷 鬧闹 聞闻 "
    "閱阅 隊队 陽阳 陰阴 陣阵 階阶 際际 陸陆 陳陈 險险 隨随 隱隐 難难 霧雾 韋韦 韓韩 頁页 頂顶 項项 順顺 須须 "
    "顧顾 頓顿 預预 領领 頻频 顆颗 題题 顏颜 額额 風风 飛飞 飯饭 飲饮 飾饰 飽饱 館馆 驅驱 驢驴 駛驶 駕驾 驗验 "
    "罵骂 騎骑 騙骗 騷骚 雞鸡 鴉鸦 鴨鸭 麥麦 黃黄 齊齐 龍龙 龔龚 製制 發发 髮发 臺台 颱台 後后 幾几 麼么 們们 "
    "個个 為为 與与 會会 鬱郁 買买 賬账 黨党 國国 習习 東东 舉举 遊游 亂乱 癡痴 輕轻 禮礼 註注 冊册 價价 贓赃 "
    "姦奸 褻亵 顛颠 軍军 屍尸 區区 鄉乡 貳贰 贏赢 黴霉 淒凄 劑剂 醫医 輯辑 廣广 專专 亞亚 鬍胡 鬚须 準准 採采 "
    "佔占 鬆松 餘余 隻只 捲卷 係系 繫系 穀谷 徵征 薑姜 麵面 濱滨"
)
_TRADITIONAL = str.maketrans({pair[0]: pair[1] for pair in _TRADITIONAL_PAIRS.split()})

# Words attackers misspell or that people mistype; the list is chosen so that no one-letter slip of these words
# is another word or name: not "heroin" ("heron"), "launder" ("lauder"), "casino" ("casio"), "skimmer"
# ("simmer"), "gambling" ("ambling").
_TYPO_WORDS = (
    "explosive", "explosives", "detonator", "molotov", "phishing", "counterfeit", "laundering",
    "methamphetamine", "cocaine", "fentanyl", "suicide", "suicidal", "murder", "poison", "kidnap", "chargeback",
    "ransomware", "keylogger", "pornographic", "prostitute", "tiananmen", "independence", "humiliate", "insults",
    "smuggling", "untraceable",
)  # fmt: skip


def _typos(vocabulary: frozenset[str]) -> dict[str, str]:
    """One adjacent swap or one dropped letter of the words above, unless the variant is a rule word itself
    or two words share it."""
    seen: dict[str, str | None] = {}
    for word in _TYPO_WORDS:
        swaps = (word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1))
        drops = (word[:i] + word[i + 1 :] for i in range(len(word)))
        for variant in (*swaps, *drops):
            if variant != word and variant not in vocabulary:
                seen[variant] = word if seen.get(variant, word) == word else None
    return {variant: word for variant, word in seen.items() if word is not None}


# Ordinals and units keep their digits ("4th", "3d", "5g" are not l33t), and "x1" (the shop's phone) is not
# read as the leader's name "xi".
_ORDINAL = re.compile(r"[0-9]+[a-z]{1,2}")
_NOT_LEET = frozenset({"xi", "xis"})
# A long unknown token is read as run-together words ("howtomakeabomb") only when one of them is one of these:
# the rules' vocabulary is large, and "ActionContext" must not read "act i on con text".
_SPLIT_ANCHORS = frozenset(
    (
        "bomb", "bombs", "explosive", "explosives", "kill", "killing", "murder", "poison", "suicide", "die", "dead",
        "gun", "guns", "weapon", "weapons", "hack", "hacking", "phishing", "porn", "nude", "nudes", "sex", "meth",
        "cocaine", "heroin", "weed", "drugs", "steal", "stolen", "scam", "launder", "laundering", "insult", "insults",
        "idiot", "stupid", "myself", "hurt", "stab", "shoot", "knife", "fake", "clone", "smuggle", "counterfeit",
        "casino", "gambling", "escort", "nazi", "ccp", "taiwan", "tibet", "xinjiang", "tiananmen", "independence",
        "overdose",
    )
)  # fmt: skip


class _HarmWords(WordsView):
    """The `words` view over the harm rules' vocabulary, with the harm words' typos."""

    def __init__(self, vocabulary: Iterable[str]) -> None:
        super().__init__(vocabulary)
        self._typos = _typos(self.vocabulary)

    def _unleet(self, token: str) -> str:
        if _ORDINAL.fullmatch(token):
            return token
        read = super()._unleet(token)
        return token if read in _NOT_LEET else read

    def _split(self, token: str) -> list[str]:
        words = super()._split(token)
        return words if len(words) == 1 or _SPLIT_ANCHORS.intersection(words) else [token]


def harm_compact_view(text: str) -> str:
    """injection.compact_view with the traditional forms of the harm rules' characters simplified too."""
    return compact_view(text).translate(_TRADITIONAL)


# --- rules ---


def default_rule_paths() -> list[Path]:
    """The rule file shipped with kefu."""
    data = resources.files("safety") / "data"
    if not isinstance(data, Path):
        raise ProjectError("kefu's safety package data is not on the file system (zip install?)", path=str(data))
    return [data / "harm.txt"]


def load_harm_rules(paths: Iterable[str | Path]) -> tuple[InjectionRule, ...]:
    """Read harm rule files in order (the format of safety/data/injection.txt, with ids `category.name`); a
    later file's `rule` line naming an existing id adds patterns, and a weight there replaces the old one (0
    turns the rule off). A malformed line, an unknown category or a pattern that does not compile raises
    ProjectError naming the file and line."""
    macros: dict[str, str] = {}
    drafts: dict[str, RuleDraft] = {}
    for path in map(Path, paths):
        content = read_text_file(path, "harm rule file")
        for keyword, body, lineno in logical_lines(content):
            if keyword == "rule":
                _rule_line(body, drafts, str(path), lineno)
            else:
                apply_statement(keyword, body, macros, drafts, str(path), lineno)
    return tuple(
        InjectionRule(rule_id, draft.weight, *(tuple(draft.patterns[view]) for view in ("en", "zh", "raw")))
        for rule_id, draft in drafts.items()
    )


def _rule_line(body: str, drafts: dict[str, RuleDraft], path: str, line: int) -> None:
    fields = body.split()
    match = _RULE_ID.fullmatch(fields[0]) if fields else None
    if match is None or len(fields) > 2:
        raise ProjectError("expected 'rule category.name [weight]' (lower case)", path=path, line=line)
    if match.group(1) not in CATEGORIES:
        raise ProjectError(f"unknown category {match.group(1)!r}; use one of {', '.join(CATEGORIES)}",
                           path=path, line=line)  # fmt: skip
    weight = parse_weight(fields[1], path, line) if len(fields) == 2 else None
    if fields[0] not in drafts and weight is None:
        raise ProjectError(f"new rule {fields[0]!r} needs a weight", path=path, line=line)
    draft = drafts.pop(fields[0], None) or RuleDraft(0.0, {"en": [], "zh": [], "raw": []})
    draft.weight = draft.weight if weight is None else weight
    drafts[fields[0]] = draft  # the current rule is the last one: the pattern lines below append to it


@cache
def _default_rules() -> tuple[InjectionRule, ...]:
    return load_harm_rules(default_rule_paths())


def harm_rules() -> tuple[str, ...]:
    """The ids of the shipped rules, in file order (for docs and traces)."""
    return tuple(rule.id for rule in _default_rules())


def category_of(rule_id: str) -> str:
    return rule_id.partition(".")[0]


# --- the check ---


HarmAssessment = RuleAssessment

_NOTHING = HarmAssessment(0.0, (), "")


def _assessment(weights: dict[str, float]) -> HarmAssessment:
    if not weights:
        return _NOTHING
    totals: dict[str, float] = {}
    strongest: dict[str, float] = {}
    for rule_id, weight in weights.items():
        category = category_of(rule_id)
        totals[category] = totals.get(category, 0.0) + weight
        strongest[category] = max(strongest.get(category, 0.0), weight)
    category = min(totals, key=lambda c: (-round(totals[c], 6), -strongest[c], CATEGORIES.index(c)))
    ranked = sorted(weights.items(), key=lambda item: (category_of(item[0]) != category, -item[1], item[0]))
    return HarmAssessment(round(totals[category], 6), tuple(rule_id for rule_id, _ in ranked), category)


class _HarmRuleSet:
    def __init__(self, rules: Sequence[InjectionRule]) -> None:
        self.rules = compile_rules(rules)
        self.words = _HarmWords(rule_vocabulary(rules) | {"i", "a", "u", *_TYPO_WORDS})

    def weights(self, text: str) -> dict[str, float]:
        return matched_weights(self.rules, self.words.view(text), harm_compact_view(text), raw_view(text))

    def assess(self, text: str, *, threshold: float) -> HarmAssessment:
        assessment = _assessment(self.weights(text))
        if assessment.blocked(threshold):
            return assessment
        for payload in decoded_payloads(reveal(text)):  # a request hidden in base64 or hex
            hidden = _assessment(self.weights(payload))
            if hidden.blocked(threshold):
                return hidden
        return assessment


class HarmfulRequestCheck(RuleCheck):
    """Customer input asking for harmful help, by category (see the module doc); the verdict's category is
    the deciding rule's. Only input is checked: replies are grounded in the facts, and other checks see them."""

    name = NAME

    @staticmethod
    def read_rules(paths: Iterable[str | Path]) -> tuple[InjectionRule, ...]:
        return load_harm_rules(paths)

    @staticmethod
    def shipped_paths() -> list[Path]:
        return default_rule_paths()

    def compile_rules(self, rules: Sequence[InjectionRule] | None) -> _HarmRuleSet:
        return _HarmRuleSet(_default_rules() if rules is None else rules)

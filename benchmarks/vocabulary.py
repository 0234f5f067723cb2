"""Words the generated archive is made of: titles, paths and hand notes that read like the real ones.

The notes reuse a small poker vocabulary on purpose: words such as "river", "flop" or "call"
end up in a large share of all notes, which is what makes full-text search hard at scale.
"""

from __future__ import annotations

PROJECTS = [
    ("WSOP", "World Series of Poker"),
    ("HCL", "Hustler Casino Live"),
    ("GGMILLIONS", "GGMillions"),
    ("MPP", "Merit Poker Premier"),
    ("PAD", "Poker After Dark"),
    ("GOG", "Game of Gold"),
    ("OTHER", "Other Broadcasts"),
    ("EPT", "European Poker Tour"),
    ("WPT", "World Poker Tour"),
    ("APT", "Asian Poker Tour"),
]

LOCATIONS = ["Las Vegas", "Europe", "Paradise", "Online", "Los Angeles", "Barcelona", "Macau"]

GAMES = [
    ("NLHE", "No-Limit Hold'em"),
    ("PLO", "Pot-Limit Omaha"),
    ("PLO8", "Pot-Limit Omaha Hi-Lo"),
    ("Mixed", "Mixed Games Championship"),
    ("Stud", "Seven Card Stud"),
    ("Razz", "Razz Championship"),
    ("HORSE", "H.O.R.S.E."),
    ("2-7TD", "2-7 Triple Draw Lowball"),
]

EVENT_SUFFIXES = [
    "Main Event",
    "High Roller",
    "Super High Roller",
    "Mystery Bounty",
    "Championship",
    "Monster Stack",
    "Colossus",
    "Millionaire Maker",
    "Ladies Event",
    "Seniors Event",
]

EVENT_TYPES = [
    "main_event",
    "high_roller",
    "super_high_roller",
    "mystery_bounty",
    "bracelet",
    "bracelet",
    "bracelet",
    "circuit",
    "super_circuit",
    "tv_series",
]

BUY_INS = [400, 600, 1000, 1500, 3000, 5000, 10000, 25000, 50000, 100000]

VERSIONS = [
    "mastered",
    "clean",
    "stream",
    "subclip",
    "final_edit",
    "nobug",
    "pgm",
    "hires",
    "generic",
]

FAMOUS = [
    "Ivey",
    "Negreanu",
    "Hellmuth",
    "Seidel",
    "Esfandiari",
    "Dwan",
    "Antonius",
    "Mercier",
    "Selbst",
    "Holz",
    "Bonomo",
    "Koon",
    "Schemion",
    "Kenney",
    "Chidwick",
    "Foxen",
    "Addamo",
    "Tony G",
    "Brunson",
    "Chan",
    "Moneymaker",
    "Gold",
    "Cada",
    "Riess",
    "Vayo",
    "McKeehen",
    "Jonas",
    "Jacobson",
    "Josephy",
    "Mizrachi",
    "Deeb",
    "Duhamel",
    "Grospellier",
    "Kurganov",
    "Boeree",
    "Zhang",
    "Park",
    "Kim",
    "Tanaka",
    "Rodriguez",
]

HANDS = [
    "pocket aces",
    "pocket kings",
    "pocket queens",
    "pocket jacks",
    "ace-king suited",
    "ace-queen offsuit",
    "king-queen suited",
    "seven-deuce offsuit",
    "pocket eights",
    "suited connectors",
    "a flush draw",
    "an open-ended straight draw",
    "top pair",
    "bottom two pair",
    "a set of nines",
    "the nut flush",
    "a full house",
    "quad sevens",
    "a straight flush",
    "nothing at all",
]

ACTIONS = [
    "opens from under the gun",
    "three-bets from the button",
    "four-bets all in",
    "limps in from the small blind",
    "check-raises the flop",
    "leads out on the turn",
    "overbets the river",
    "slow-plays the flop",
    "calls a huge shove",
    "flops a set",
    "turns the nut straight",
    "rivers a miracle flush",
    "makes a hero call on the river",
    "bluffs the river with air",
    "snap-calls on the turn",
    "tank-folds the best hand",
    "min-raises the big blind",
    "shoves the flop",
    "goes for a check-raise bluff",
    "floats the flop in position",
]

BOARDS = [
    "K-Q-7 rainbow",
    "monotone",
    "paired",
    "A-A-5",
    "9-8-7 two-tone",
    "dry king-high",
    "wet coordinated",
    "J-T-9 suited",
    "low connected",
    "ace-high",
]

RESPONSES = [
    "calls with the nut flush draw",
    "folds after a long tank",
    "jams on the river",
    "makes a disciplined laydown",
    "calls it off with second pair",
    "re-raises all in",
    "hero folds a full house",
    "check-calls every street",
    "gets it all in on the flop",
    "tries a massive bluff on the river",
]

OUTCOMES = [
    "wins a pot of over two million",
    "gets eliminated in fifth place",
    "doubles up to become the chip leader",
    "the river card changes everything",
    "the bubble finally bursts",
    "the table erupts after the river",
    "a cooler sends one player home",
    "the crowd goes wild on the rail",
    "a brutal bad beat on the river",
    "secures the bracelet",
]

WINNER_HANDS = ["AA", "KK", "QQ", "AKs", "AQo", "JJ", "77", "T9s", "72o", "A5s"]

TAGS = {
    "poker_play": [
        "bluff",
        "hero_call",
        "value_bet",
        "check_raise",
        "slow_play",
        "overbet",
        "three_bet",
        "four_bet",
        "squeeze",
        "float",
        "donk_bet",
        "hero_fold",
    ],
    "emotion": [
        "celebration",
        "frustration",
        "tension",
        "table_talk",
        "trash_talk",
        "tears",
        "laughter",
        "anger",
    ],
    "epic_hand": [
        "cooler",
        "bad_beat",
        "set_over_set",
        "royal_flush",
        "quads",
        "straight_flush",
        "bracelet_winning_hand",
        "bubble",
    ],
    "runout": [
        "one_outer",
        "runner_runner",
        "river_card",
        "turn_card",
        "board_pair",
        "chop",
    ],
    "adjective": [
        "brutal",
        "incredible",
        "insane",
        "legendary",
        "sick",
        "huge",
        "classic",
    ],
}

FOLDER_KINDS = ["Mastered", "Clean", "Stream", "Subclips", "Final_Edit", "NoBug", "PGM", "HiRes"]

OTHER_FILES = [
    (".json", "metadata", False),
    (".xml", "metadata", False),
    (".srt", "metadata", False),
    (".jpg", "other", False),
    (".png", "other", False),
    (".zip", "archive", False),
    (".txt", "other", False),
    (".DS_Store", "system", True),
    ("Thumbs.db", "system", True),
    (".md5", "metadata", False),
]

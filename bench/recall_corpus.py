"""A seeded generator of multi-session conversations and recall questions for ``bench_recall``.

Nothing here comes from a public benchmark (LoCoMo and LongMemEval are kept for independent
evaluation). Every user gets about 48 past sessions over three months: sessions about one fact,
sessions that mention a fact in passing (late in a long conversation, often as a statement
followed by a question back), dated events, facts spread over two sessions, facts updated by
a later session, and distractor sessions about the same domains that share their words.

Each question has two phrasings, picked at random: one shares a word or two with what was said
("What did the kids name our rescue?"), the other is a paraphrase sharing none ("What's the
name of the dog we adopted?" for "a rescue greyhound ... the kids named her Juniper"). The
distractor sessions reuse the questions' nouns (dogs, bosses, doctors, trips), so neither word
overlap nor topic alone finds the answer.
Kinds: ``single`` (the session is about the fact), ``passing`` (one sentence of a session about
something else), ``temporal`` (when something happened: needs the dated event), ``multi`` (the
answer spans two sessions: evidence is both), ``updated`` (a fact changed later: evidence is
the later session).

The data is generated at run time (``generate(seed)``) and never written to the repository.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from memory.pipeline.summarizer import Turn

KINDS = ("single", "passing", "temporal", "multi", "updated")
PHRASINGS = ("shared words", "paraphrase")
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Session:
    """One past conversation of a user, held on ``day`` days after ``START``."""

    session_id: str
    user_id: str
    day: int
    domain: str
    turns: list[Turn]
    facts: tuple[str, ...] = ()  # what the session states (the generator's own facts), for oracle rows

    @property
    def started(self) -> datetime:
        """When the conversation took place."""
        return START + timedelta(days=self.day, hours=self.day % 9)


@dataclass(frozen=True)
class Question:
    """A question a user asks later, and the sessions holding its answer."""

    user_id: str
    kind: str
    text: str
    evidence: tuple[str, ...]
    phrasing: str = "shared words"  # or "paraphrase" (no content word in common with the evidence)


# -- facts: (domain, slot values, statement templates, passing clause, question templates) ----------

SLOTS: dict[str, list[str]] = {
    "breed": ["greyhound", "beagle", "corgi", "spaniel", "whippet", "terrier mix", "border collie"],
    "petname": ["Juniper", "Biscuit", "Pepper", "Mochi", "Waffles", "Olive", "Clementine", "Pickles"],
    "company": ["Northwind", "Fabrikam", "Contoso", "Globex", "Initech", "Umbrella Health", "Tailspin"],
    "role": ["data analyst", "product manager", "site reliability engineer", "UX researcher", "controller"],
    "allergen": ["shellfish", "penicillin", "tree nuts", "latex", "sesame", "bee stings"],
    "instrument": ["cello", "trumpet", "ukulele", "bass guitar", "clarinet", "banjo"],
    "teacher": ["Mrs. Okafor", "Dmitri", "Ingrid", "Mr. Alvarez", "Keiko"],
    "book": ["The Remains of the Day", "Piranesi", "Station Eleven", "Middlemarch", "The Overstory"],
    "hood": ["Ballard", "the Mission", "Shoreditch", "Kreuzberg", "Fishtown", "Le Plateau"],
    "kid": ["Theo", "Mateo", "Arjun", "Felix", "Noah"],
    "school": ["Lincoln Elementary", "Riverside Montessori", "St. Brendan's", "Oakwood Academy"],
    "coffee": ["flat white", "cortado", "iced americano", "oat latte with an extra shot", "macchiato"],
    "language": ["Portuguese", "Japanese", "Swahili", "Korean", "Greek", "Dutch"],
    "codename": ["Bluebird", "Granite", "Nightjar", "Tidewater", "Kestrel", "Lantern"],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"],
    "gym": ["Pulse Studio", "the YMCA", "CycleBar", "Iron Works", "FlyWheel"],
    "relative": ["mother", "brother", "aunt", "grandfather", "sister"],
    "date": ["June 3rd", "the 19th of August", "October 11th", "December 2nd", "April 27th"],
    "plant": ["fiddle leaf fig", "monstera", "snake plant", "bird of paradise", "pothos"],
    "amount": ["$600", "$1,200", "$850", "$400", "$2,000"],
    "furniture": ["bookshelf", "coffee table", "garden bench", "bed frame", "standing desk"],
    "med": ["lisinopril", "amlodipine", "losartan", "metoprolol"],
    "country": ["Portugal", "Vietnam", "Iceland", "Morocco", "Chile", "New Zealand"],
    "month": ["May", "July", "September", "November", "January"],
    "phone": ["Pixel 9", "iPhone 16", "Galaxy S25", "Fairphone 5"],
    "podcast": ["Hidden Brain", "Radiolab", "Darknet Diaries", "The Rest Is History", "Acquired"],
    "sport": ["volleyball", "kickball", "ultimate frisbee", "softball", "pickleball"],
    "title": ["head of nursing", "chief resident", "director of radiology", "charge nurse"],
    "dish": ["a lamb biryani", "Korean fried cauliflower", "a lemon olive oil cake", "green chile enchiladas"],
    "color": ["dark green", "silver", "burgundy", "white", "navy blue"],
    "car": ["Subaru Outback", "Kia EV6", "Toyota RAV4", "Volvo wagon", "Honda Civic"],
    "city": ["Lisbon", "Kyoto", "Cape Town", "Vancouver", "Edinburgh", "Oaxaca"],
    "racetime": ["48:12", "52:40", "44:55", "58:03", "50:31"],
    "place": ["food bank", "animal shelter", "public library", "community garden", "soup kitchen"],
    "restaurant": ["Marrow", "La Ciccia", "Kin Khao", "Lilia", "Nopa"],
    "laptop": ["ThinkPad X1", "MacBook Air", "Dell XPS", "Framework laptop"],
}

# name: (domain, statements, passing clause, questions)
FACTS: dict[str, tuple[str, list[str], str, list[str]]] = {
    "pet": ("pets", ["We brought home a rescue {breed} last weekend and the kids named her {petname}."],
            "we just brought home a rescue {breed} we call {petname}", ["What did the kids name our rescue?", "What's the name of the dog we adopted?"]),
    "job": ("work", ["I accepted the offer from {company}, I start as their {role} next month."],
            "I accepted an offer from {company} to be their {role}", ["Whose offer did I accept?", "Which employer am I moving to?"]),
    "allergy": ("health", ["The skin test confirmed I react to {allergen}, so I have to be careful now."],
                "the skin test showed I react to {allergen}", ["What did my skin test show?", "What substance am I allergic to?"]),
    "instrument": ("music", ["I started {instrument} lessons on Thursday evenings with {teacher}."],
                   "I started {instrument} lessons with {teacher}", ["What are my Thursday lessons for?", "Which musical instrument am I learning?"]),
    "book": ("books", ["Our reading circle picked {book} for this month."],
             "our reading circle picked {book}", ["What did our reading circle pick?", "What novel is my book club discussing?"]),
    "hood": ("home", ["We signed a lease on a two-bedroom flat in {hood}."],
             "we signed a lease on a flat in {hood}", ["Where is the flat we leased?", "Which neighborhood did we move to?"]),
    "school": ("family", ["{kid} got a place at {school} starting in September."],
               "{kid} got a place at {school}", ["Where does my son start in September?", "Where will my son attend classes this fall?"]),
    "coffee": ("food", ["My usual order is a {coffee}, nothing fancy."],
               "my usual order is a {coffee}", ["What is my usual coffee order?", "How do I take my regular café drink?"]),
    "language": ("learning", ["I practise {language} with an app on the train every morning."],
                 "I practise {language} on the train", ["Which language do I practise on the train?", "What foreign tongue am I studying?"]),
    "codename": ("work", ["The database migration at work is code-named {codename}."],
                 "the database migration is code-named {codename}", ["What is the migration project called?", "What's the internal label of our data move?"]),
    "spin": ("fitness", ["I go to spin class on {weekday} mornings at {gym}."],
             "I go to spin class on {weekday} mornings", ["Which day is my spin class?", "When do I do my indoor cycling workouts?"]),
    "birthday": ("family", ["My {relative}'s birthday is {date}, I must order a present."],
                 "my {relative}'s birthday is {date}", ["What date is my {relative}'s birthday?", "When does my {relative} turn a year older?"]),
    "plant": ("home", ["I repotted the {plant} and it is finally putting out new leaves."],
              "I repotted the {plant}", ["Which plant did I repot?", "Which houseplant did I move into a bigger container?"]),
    "savings": ("money", ["I'm setting aside {amount} every month for a down payment."],
                "I'm setting aside {amount} a month for a down payment", ["How much am I putting toward the down payment each month?", "How much do I save monthly toward buying a home?"]),
    "woodwork": ("home", ["I built a {furniture} out of reclaimed oak over the weekend."],
                 "I built a {furniture} out of reclaimed oak", ["What did I build from reclaimed wood?", "What piece of furniture did I make myself?"]),
    "med": ("health", ["The doctor started me on {med} for my blood pressure."],
            "the doctor started me on {med}", ["What did the doctor start me on?", "Which prescription am I taking for hypertension?"]),
    "vacation": ("travel", ["We booked ten days in {country} for {month}."],
                 "we booked ten days in {country}", ["Where did we book our ten days away?", "Where are we going on our next holiday?"]),
    "phone": ("tech", ["I finally switched to a {phone}."],
              "I finally switched to a {phone}", ["Which phone did I switch to?", "What smartphone do I carry now?"]),
    "podcast": ("media", ["I've been hooked on a show called {podcast} during my commute."],
                "I've been hooked on {podcast} lately", ["What show am I hooked on?", "Which podcast keeps me company while commuting?"]),
    "league": ("fitness", ["I joined a {sport} league that plays on {weekday} nights."],
               "I joined a {sport} league", ["What kind of league did I join?", "What recreational team did I sign up for?"]),
    "spouse": ("family", ["My wife just got promoted to {title} at the hospital."],
               "my wife got promoted to {title}", ["What was my wife promoted to?", "What is my partner's new position?"]),
    "potluck": ("food", ["I made {dish} for the office potluck and it vanished in minutes."],
                "I made {dish} for the office potluck", ["What did I make for the potluck?", "What did I cook for the shared lunch at work?"]),
    "car": ("cars", ["We traded the old sedan for a {color} {car}."],
            "we traded the old sedan for a {color} {car}", ["What did we trade the sedan for?", "What vehicle did we get?"]),
    "wedding": ("family", ["My {relative} is getting married in {city} in {month}, and I'm giving the toast."],
                "my {relative} is getting married in {city}", ["Where is my {relative} getting married?", "Where is the family wedding being held?"]),
    "race": ("fitness", ["I finished the city 10k in {racetime}, a new personal best."],
             "I finished the city 10k in {racetime}", ["What was my 10k time?", "What was my best time in a running race?"]),
    "volunteer": ("community", ["I volunteer at the {place} every other Saturday."],
                  "I volunteer at the {place} every other Saturday", ["Where do I volunteer?", "Where do I donate my time?"]),
    "anniversary": ("food", ["Our anniversary dinner is booked at {restaurant} downtown."],
                    "our anniversary dinner is booked at {restaurant}", ["Where is our anniversary dinner?", "Where are we celebrating being married?"]),
    "laptop": ("tech", ["Work gave me a {laptop} and I'm still getting used to it."],
               "work gave me a {laptop}", ["Which laptop did work give me?", "What computer did my employer issue me?"]),
}

# temporal: (domain, event said that day, questions)
EVENTS: list[tuple[str, str, list[str]]] = [
    ("cars", "finally passed my driving test on the second attempt",
     ["When did I pass my driving test?", "When did I get my driver's license?"]),
    ("fitness", "ran my first half marathon", ["How long ago was my first half marathon?", "When did I complete my first 21k?"]),
    ("health", "had a root canal at the dentist", ["When did I see the dentist?", "When was my dental procedure?"]),
    ("work", "handed in my resignation at the bank", ["When did I resign?", "When did I quit my old employer?"]),
    ("home", "closed on the condo", ["When did we close on our home?", "When did the apartment purchase go through?"]),
    ("pets", "adopted two kittens from the shelter", ["When did we adopt the kittens?", "When did we bring home the cats?"]),
    ("travel", "went skydiving for the first time", ["When did I first go skydiving?", "When did I jump out of a plane?"]),
    ("work", "presented the quarterly roadmap to the board",
     ["When did I present to the board?", "When did I pitch our plan to the directors?"]),
    ("family", "watched my nephew graduate from college",
     ["When was my nephew's graduation?", "When was the university ceremony I attended?"]),
]
TEMPORAL_OPENERS = ["This morning I {event}.", "Yesterday I {event}.", "Big day: I {event} today."]

# multi-session: (domain, first session, second session, question, slot pools)
MULTI: list[tuple[str, str, str, str]] = [
    ("fitness", "I bought a {a} for commuting to the office.", "I couldn't resist and picked up a {b} for the trails.",
     "Which bikes did I buy?|Which bicycles have I purchased?"),
    ("travel", "We spent a week hiking in {a}.", "Just got back from a food tour in {b}.",
     "Where did I travel this year?|Which countries did I visit on my trips this year?"),
    ("learning", "I enrolled in an evening course on {a}.", "I also signed up for a weekend workshop on {b}.",
     "Which courses did I sign up for?|What classes am I taking?"),
    ("music", "I saw {a} live at the arena on Friday.", "We caught {b} at the jazz club last night.",
     "Which bands did I see live?|Which concerts did I go to?"),
    ("health", "I sprained my left ankle playing {a}.", "I pulled a muscle in my back carrying {b}.",
     "How did I hurt myself recently?|What injuries have I had lately?"),
]
MULTI_SLOTS: list[tuple[list[str], list[str]]] = [
    (["folding bike", "cargo bike", "road bike"], ["gravel bike", "full-suspension mountain bike", "fat bike"]),
    (["the Dolomites", "Patagonia", "Scotland"], ["Mexico", "Japan", "Georgia"]),
    (["watercolor painting", "Python programming", "public speaking"], ["bread baking", "pottery", "first aid"]),
    (["Florence and the Machine", "Arcade Fire", "Fleetwood Mac tribute band"], ["Kamasi Washington", "Snarky Puppy", "Esperanza Spalding"]),
    (["basketball", "tennis", "squash"], ["a sofa up three flights", "moving boxes", "a kayak"]),
]

# updated: (domain, first statement, later statement, question, old pool, new pool)
UPDATES: list[tuple[str, str, str, str, list[str], list[str]]] = [
    ("work", "My manager {a} is great about giving feedback on my drafts.",
     "{a} moved over to the Singapore office, so {b} is in charge of our team now.",
     "Who is in charge of my team now?|Who is my current boss?", ["Priya", "Marcus", "Helen"], ["Tomasz", "Aisha", "Graham"]),
    ("home", "We rent a small place in {a} close to the river.",
     "The move is finished, we officially live in {b} now.",
     "Where do I live now?|Which city is home for me at the moment?", ["Denver", "Leeds", "Lyon"], ["Austin", "Bristol", "Nantes"]),
    ("cars", "I drive a {a} to work every day.", "Sold the {a} last week and bought a {b}.",
     "What car do I drive now?|What vehicle do I own these days?", ["Mazda 3", "Ford Focus", "VW Golf"], ["Tesla Model 3", "Hyundai Ioniq 5", "Mini Cooper"]),
    ("fitness", "I swim laps at {a} three times a week.", "I cancelled the pool membership and switched to bouldering at {b}.",
     "Where do I work out now?|What is my exercise routine these days?", ["the aquatic center", "the lido", "the university pool"],
     ["Granite Gym", "Boulder Barn", "The Crag"]),
    ("food", "I'm doing keto and cut out bread completely.", "I quit keto, I follow a {b} diet now.",
     "What diet do I follow now?|What eating plan am I on currently?", ["keto"], ["Mediterranean", "vegetarian", "pescatarian"]),
]

# -- filler: per domain, user lines (no facts, same nouns as the questions) and assistant lines ----

USER_FILLER: dict[str, list[str]] = {
    "pets": ["Our neighbor's dog barks for hours whenever they leave the house.",
             "Is it normal for a puppy to chew every shoe in sight?",
             "I keep reading about raw food for dogs but I'm not convinced.",
             "The vet bills this year have been higher than I expected.",
             "Do cats really need to go outside to be happy?",
             "My friend wants to name her new dog after a cartoon character."],
    "work": ["The quarterly planning meeting ran two hours over again.",
             "My boss at my first job never gave anyone feedback.",
             "How do I say no to extra projects without sounding lazy?",
             "Our team is hiring and I'm reviewing too many resumes.",
             "The office moved to hot desks and everyone hates it.",
             "I have a performance review coming up and I'm nervous about it."],
    "health": ["I've been sleeping badly and waking up at 4 am.",
               "My doctor keeps telling me to drink more water.",
               "Is it bad to take ibuprofen every day for a week?",
               "The pharmacy line was forty minutes long today.",
               "My sister thinks she is allergic to cats, but she isn't sure.",
               "I need to book a checkup, it's been a while."],
    "music": ["I can't decide between live albums and studio recordings.",
              "How long does it take an adult to learn an instrument properly?",
              "The concert hall near us has terrible acoustics.",
              "My neighbor practises drums on Sunday mornings.",
              "I made a playlist for the road trip but it's mostly 90s rock."],
    "books": ["I never finish the novels people recommend to me.",
              "Audiobooks make my commute bearable.",
              "Is it worth reading the classics if they bore me?",
              "Our library has a waiting list of three months for new releases.",
              "My friend runs a book club but it's mostly wine."],
    "home": ["The kitchen faucet has been dripping for a week.",
             "We can't agree on a paint color for the hallway.",
             "How do I keep houseplants alive over a two-week trip?",
             "Rent in the city keeps going up every year.",
             "I want to build more things myself but I don't have a workshop.",
             "Our landlord finally fixed the heating."],
    "family": ["My parents are visiting next month and I need to plan meals.",
               "The kids have a school play and I have to make a costume.",
               "Family group chats are exhausting.",
               "My cousin is planning a huge wedding and the invitations are wild.",
               "I never know what to get people for their birthdays.",
               "My wife works long shifts, so evenings are hectic."],
    "food": ["I'm trying to cook at home more instead of ordering.",
             "What's a good dish to bring to a potluck?",
             "The cafe near work changed its beans and I don't like it.",
             "I can never get rice right on the stove.",
             "We tried a new restaurant and the service was slow.",
             "Is it worth buying an espresso machine?"],
    "learning": ["I always start online courses and never finish them.",
                 "Is it too late to learn a language in your forties?",
                 "Flashcard apps feel like a chore after a week.",
                 "My company offers a training budget I never use."],
    "fitness": ["My knees hurt after running on concrete.",
                "How many rest days a week should I take?",
                "The gym is packed every evening after six.",
                "I keep buying workout gear and not using it.",
                "My friend is trying to get me into cycling.",
                "Stretching after a workout feels like a waste of time."],
    "travel": ["Flights this summer are ridiculously expensive.",
               "I always overpack and regret it.",
               "Do I need travel insurance for a short trip?",
               "Jet lag hits me harder every year.",
               "My passport expires next year, I should renew it."],
    "tech": ["My phone battery barely lasts until lunch.",
             "Should I back up my photos to the cloud or a hard drive?",
             "The new laptop keyboard layouts drive me crazy.",
             "I have way too many streaming subscriptions."],
    "media": ["I can't find anything good to watch lately.",
              "Are true crime podcasts making people paranoid?",
              "I listen to the news on the way to work and it stresses me out."],
    "money": ["Groceries cost so much more than last year.",
              "Should I pay off the car loan early?",
              "I want to start investing but index funds confuse me.",
              "House prices here are out of reach."],
    "cars": ["The check engine light came on again.",
             "Electric cars still seem expensive to me.",
             "Parking downtown is a nightmare.",
             "I need new tires before winter."],
    "community": ["Our street is organizing a cleanup day.",
                  "I'd like to give back but I don't have much time.",
                  "The local council meetings are so long."],
}
ASSISTANT_FILLER: dict[str, list[str]] = {
    "pets": ["Consistency and short training sessions usually help with that.",
             "A vet can rule out health causes before you change the routine.",
             "Many owners find that more exercise calms an anxious animal."],
    "work": ["It may help to write down priorities and share them with your manager.",
             "Setting clear boundaries early tends to make those conversations easier.",
             "Preparing a few concrete examples will make the review go smoother."],
    "health": ["If it persists, it is worth mentioning to your doctor.",
               "Regular sleep and hydration make a surprising difference.",
               "A pharmacist can also answer questions about dosage."],
    "music": ["Short daily practice beats long weekly sessions for most adults.",
              "Live recordings capture an energy that studio albums often smooth out.",
              "A good teacher can speed up the first months a lot."],
    "books": ["There is no shame in dropping a book you are not enjoying.",
              "Audiobooks count as reading, and they fit a busy schedule.",
              "Shorter classics can be a gentler way in."],
    "home": ["A small repair now can save a bigger bill later.",
             "Testing sample patches on the wall helps you decide.",
             "Self-watering pots or a neighbor can keep plants alive while you are away."],
    "family": ["Planning a few simple meals ahead takes the pressure off.",
               "Shared calendars help busy families stay in sync.",
               "A thoughtful small gift often means more than an expensive one."],
    "food": ["Batch cooking on Sundays makes weeknights easier.",
             "A crowd-pleasing dish travels well and tastes good at room temperature.",
             "Rinsing rice and measuring water carefully fixes most problems."],
    "learning": ["Small daily sessions build a habit better than long weekend ones.",
                 "Pairing a course with a concrete goal keeps motivation up.",
                 "Adults learn languages well, especially with conversation practice."],
    "fitness": ["Softer surfaces and good shoes can ease knee pain.",
                "One or two rest days a week suit most people.",
                "Going at off-peak hours makes the gym more pleasant."],
    "travel": ["Booking mid-week flights is often cheaper.",
               "A packing list you reuse every trip helps you pack light.",
               "Adjusting sleep a few days before you fly can reduce jet lag."],
    "tech": ["Lowering screen brightness and background refresh extends battery life.",
             "Keeping two backups in different places is the safest option.",
             "Rotating subscriptions month by month can save money."],
    "media": ["Curating a short list of trusted sources can lower stress.",
              "Recommendations from friends are often better than algorithms."],
    "money": ["A simple budget shows where the money actually goes.",
              "Index funds spread risk across many companies at low cost.",
              "Paying off high-interest debt first is usually the best return."],
    "cars": ["A mechanic can read the error code quickly and cheaply.",
             "Total cost of ownership matters more than the sticker price.",
             "Winter tires make a real difference on cold roads."],
    "community": ["Even a couple of hours a month makes a difference.",
                  "Local groups often need help with very small tasks."],
}
#: Everyday chatter that lengthens user turns (most real turns carry more than one topic).
CHATTER = [
    "I met {friend} for lunch on {weekday} and we talked for ages about {topic}.",
    "{friend} sent me a long voice message about {topic} this morning.",
    "The weather on {weekday} was {weather}, so I mostly stayed in.",
    "I spent most of {weekday} evening sorting out {chore}.",
    "I'm behind on {chore} again and it's bugging me.",
    "We watched {show} on {weekday} night and it was {opinion}.",
    "Traffic on the way to {errand} was {opinion}.",
    "I'm trying to be better about {habit} this month.",
    "{friend} recommended {show} to me, but I'm not sure it's my thing.",
    "I finally called {friend} back after two weeks of missed calls.",
    "The {errand} was closed when I got there, which was {opinion}.",
    "I had a weird dream about {topic} last night.",
    "My plan for {weekday} is mostly {chore} and an early night.",
    "{friend} and I keep saying we'll do {habit} together.",
]
CHATTER_SLOTS = {
    "friend": ["Sam", "Lena", "Ravi", "Chloe", "Omar", "Bea", "Jonas", "Mei", "Tariq", "Ines"],
    "weekday": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
    "topic": ["her new flat", "the election", "a documentary", "his startup idea", "old school friends",
              "the football season", "a TV finale", "conspiracy theories", "their kids"],
    "weather": ["grey and drizzly", "unexpectedly warm", "freezing", "windy", "perfect"],
    "chore": ["laundry", "emails", "the tax paperwork", "the garage", "meal prep", "insurance forms"],
    "show": ["that Danish crime series", "a baking competition", "a space documentary", "an old sitcom"],
    "opinion": ["better than expected", "a bit of a letdown", "honestly exhausting", "fine", "hilarious"],
    "errand": ["the post office", "the hardware store", "the dry cleaner", "the bank branch"],
    "habit": ["going to bed earlier", "drinking less coffee", "reading before sleep", "walking at lunch"],
}
OPENERS = ["", "", "Honestly, ", "Also, ", "Oh, and ", "Anyway, ", "By the way, "]
BACK_QUESTIONS = ["any tips?", "is that normal?", "what do you think?", "does that sound sensible?",
                  "how should I prepare?"]


class _Builder:
    """Builds one user's sessions and questions with a private random stream."""

    def __init__(self, user_id: str, rng: random.Random) -> None:
        self.user_id = user_id
        self.rng = rng
        self.sessions: list[tuple[int, str, list[Turn], tuple[str, ...]]] = []  # (order hint, domain, turns, facts)
        self.questions: list[tuple[str, tuple[str, str], list[int]]] = []  # (kind, (text, phrasing), sessions)

    def _opened(self, sentence: str) -> str:
        opener = self.rng.choice(OPENERS)
        if opener and not sentence.startswith("I "):
            sentence = sentence[0].lower() + sentence[1:]
        return opener + sentence

    def _chatter(self) -> str:
        values = {name: self.rng.choice(pool) for name, pool in CHATTER_SLOTS.items()}
        return self.rng.choice(CHATTER).format(**values)

    def _filler_turns(self, domain: str, exchanges: int) -> list[list[str]]:
        """User sentences per exchange: one or two of the domain's filler, one or two of chatter."""
        pool = USER_FILLER[domain]
        turns = []
        for _ in range(exchanges):
            sentences = self.rng.sample(pool, k=self.rng.randint(1, 2))
            sentences += [self._chatter() for _ in range(self.rng.randint(1, 2))]
            self.rng.shuffle(sentences)
            turns.append([self._opened(s) for s in sentences])
        return turns

    def _session(self, domain: str, inserts: dict[int, str], exchanges: int) -> list[Turn]:
        users = self._filler_turns(domain, exchanges)
        turns: list[Turn] = []
        for i, sentences in enumerate(users):
            if i in inserts:
                sentences = ([inserts[i]] + sentences[:1]) if i == 0 else (sentences[:1] + [inserts[i]])
            turns.append(Turn(role="user", text=" ".join(sentences)))
            reply = " ".join(self.rng.sample(ASSISTANT_FILLER[domain], k=2))
            turns.append(Turn(role="assistant", text=reply))
        return turns

    def add_session(self, order: int, domain: str, inserts: dict[int, str], exchanges: int | None = None,
                    facts: tuple[str, ...] | None = None) -> int:
        """Add a session; its facts are ``facts`` or, by default, the inserted sentences."""
        turns = self._session(domain, inserts, exchanges or self.rng.randint(6, 11))
        stated = tuple(inserts.values()) if facts is None else facts
        self.sessions.append((order, domain, turns, tuple(_as_fact(f) for f in stated)))
        return len(self.sessions) - 1

    def phrase(self, phrasings: list[str]) -> tuple[str, str]:
        """One of a question's two phrasings (shared words first) and which it is."""
        i = self.rng.randrange(2)
        return phrasings[i], PHRASINGS[i]

    def fill(self, template: str, values: dict[str, str]) -> str:
        return template.format(**values)

    def ask(self, phrasings: list[str], values: dict[str, str]) -> tuple[str, str]:
        text, phrasing = self.phrase(phrasings)
        return self.fill(text, values), phrasing

    def values(self) -> dict[str, str]:
        return {name: self.rng.choice(pool) for name, pool in SLOTS.items()}


def _as_fact(statement: str) -> str:
    """A stated sentence as a fact line: capitalised, ending with a period (words unchanged)."""
    statement = statement.strip()
    return statement[0].upper() + statement[1:] + ("" if statement[-1] in ".!?" else ".")


def _build_user(user_id: str, rng: random.Random) -> _Builder:
    b = _Builder(user_id, rng)
    facts = list(FACTS)
    rng.shuffle(facts)
    singles, passing = facts[:12], facts[12:22]
    for name in singles:
        domain, statements, _, questions = FACTS[name]
        values = b.values()
        position = b.add_session(rng.randint(0, 99), domain, {0: b.fill(rng.choice(statements), values)})
        b.questions.append(("single", b.ask(questions, values), [position]))
    host_domains = list(USER_FILLER)
    for name in passing:
        domain, _, clause, questions = FACTS[name]
        values = b.values()
        host = rng.choice([d for d in host_domains if d != domain])
        exchanges = rng.randint(8, 11)
        at = rng.randint(5, exchanges - 1)
        said = b.fill(clause, values)
        sentence = f"{rng.choice(['By the way, ', 'Unrelated, but ', 'Oh, '])}{said}, {rng.choice(BACK_QUESTIONS)}"
        position = b.add_session(rng.randint(0, 99), host, {at: sentence}, exchanges, facts=(said,))
        b.questions.append(("passing", b.ask(questions, values), [position]))
    for domain, event, phrasings in rng.sample(EVENTS, k=4):
        opener = rng.choice(TEMPORAL_OPENERS).format(event=event)
        position = b.add_session(rng.randint(0, 99), domain, {0: opener})
        b.questions.append(("temporal", b.phrase(phrasings), [position]))
    for index in rng.sample(range(len(MULTI)), k=3):
        domain, first, second, question = MULTI[index]
        pool_a, pool_b = MULTI_SLOTS[index]
        a, c = rng.choice(pool_a), rng.choice(pool_b)
        p1 = b.add_session(rng.randint(0, 49), domain, {0: first.format(a=a)})
        p2 = b.add_session(rng.randint(50, 99), rng.choice(host_domains), {rng.randint(1, 3): second.format(b=c)})
        b.questions.append(("multi", b.phrase(question.split("|")), [p1, p2]))
    for index in rng.sample(range(len(UPDATES)), k=3):
        domain, first, later, question, old, new = UPDATES[index]
        a, c = rng.choice(old), rng.choice(new)
        b.add_session(rng.randint(0, 39), domain, {0: first.format(a=a)})
        p2 = b.add_session(rng.randint(60, 99), rng.choice([domain, *host_domains]), {rng.randint(0, 2): later.format(a=a, b=c)})
        b.questions.append(("updated", b.phrase(question.split("|")), [p2]))
    for _ in range(10):
        b.add_session(rng.randint(0, 99), rng.choice(host_domains), {})
    return b


def generate(seed: int = 12, users: int = 10) -> tuple[list[Session], list[Question]]:
    """Sessions (each user's in time order) and questions, fully determined by ``seed``."""
    rng = random.Random(seed)
    sessions: list[Session] = []
    questions: list[Question] = []
    for u in range(users):
        user_id = f"user-{u:02d}"
        b = _build_user(user_id, random.Random(rng.random()))
        order = sorted(range(len(b.sessions)), key=lambda i: (b.sessions[i][0], i))
        ids: dict[int, str] = {}
        for day, i in enumerate(order):
            _, domain, turns, facts = b.sessions[i]
            ids[i] = f"{user_id}-s{day:03d}"
            sessions.append(Session(ids[i], user_id, day * 2, domain, turns, facts))
        questions.extend(
            Question(user_id, kind, text, tuple(ids[p] for p in positions), phrasing)
            for kind, (text, phrasing), positions in b.questions
        )
    return sessions, questions


def describe(sessions: list[Session], questions: list[Question]) -> dict[str, Any]:
    """Counts for the benchmark's header."""
    return {
        "users": len({s.user_id for s in sessions}),
        "sessions": len(sessions),
        "turns": sum(len(s.turns) for s in sessions),
        "questions": len(questions),
        **{f"q_{kind}": sum(1 for q in questions if q.kind == kind) for kind in KINDS},
        "q_paraphrase": sum(1 for q in questions if q.phrasing == "paraphrase"),
    }

"""Does an answer in another language talk about what it was asked? Per-topic advice words in six languages.

SmolLM2-135M writes fluent-looking nonsense in the languages it barely knows: real words, grammatical enough,
about nothing ("Il modo migliore per leggere più libri. Questo è una storia completa che rimane la storia
completa." to a request for advice on reading more). No word-level test sees it, and the blind readers of the
gold audit failed every such answer (docs/evals.md). What a real answer has and this babble lacks is the matter
of the topic: advice on sleeping names the bed, the room, screens, caffeine, a routine; an explanation of why
leaves change colour names chlorophyll, light, the cold.

`TOPICS` holds, for each everyday topic the suites ask about, the word stems that name it in a request
(``cues``, any language, since a request in English may ask for an answer in Italian; "plant+health" needs both: a
topic is a question, not a domain, so "Wie koche ich Spargel?" names none) and, per language, the stems of words an
answer on it uses (``words``). `on_topic_words(request, response, lang)` returns the distinct word stems of the
request's topics that the response uses in `lang` and the request does not. The answer gate
(`postlab.spec.answer`) counts a response written in the asked-for language (not English) that names fewer than
two (one, in an answer under 15 words) as off the topic, and a short answer that shares no word with the request but
names its topic ("Inizia con ricette semplici, come la frittata" to learning to cook) as on it. A request that
names none of the topics is not judged here.

Stems are accent-folded and lower-case and match the start of a word ("dorm" matches "dormitorio"); a stem
ending in ``=`` matches the whole word only ("lit=" is the French bed, not "little"). Words of the request are
not counted ("ritmo" in an answer to "Come trovare il mio ritmo?"): babble restates the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from postlab.spec.phrases import fold

LANGUAGES = ("en", "es", "fr", "de", "it", "pt")
MIN_TOPIC_WORDS = 2
SHORT_ANSWER_WORDS = 15


@dataclass(frozen=True)
class Topic:
    """One topic: stems that name it in a request (any language), and per language the stems of words an answer
    on it uses."""
    name: str
    cues: tuple[str, ...]
    words: dict[str, tuple[str, ...]]


def _topic(name: str, cues: str, **words: str) -> Topic:
    assert set(words) == set(LANGUAGES), f"{name}: words for {sorted(set(LANGUAGES) ^ set(words))}"
    return Topic(name, tuple(cues.split()), {lang: tuple(w.split()) for lang, w in words.items()})


# Words of several topics at once (the body, the home, time) are listed under each topic that uses them.
TOPICS: tuple[Topic, ...] = (
    _topic(
        "sleep", "sleep dorm schlaf sommeil sueno insomn",
        en="bed= beds= bedroom bedtime nap naps napping caffeine coffee tea= screen phone dark quiet cool alarm "
           "routine schedule evening night pillow mattress relax meditat breath alcohol exercis melatonin light "
           "dinner",
        es="hora= horas= cama camas dormitorio habitacion siesta cafe cafeina te= pantalla movil telefono oscur "
           "silenci fresc alarma despertador rutina horario noche acuest levant almohada colchon relaj medit respir "
           "alcohol ejercicio luz= luces cena= cenar infusion",
        fr="lit= lits= chambre sieste cafe cafeine ecran telephone portable obscur sombre silenc frais fraich "
           "reveil routine horaire heure soir nuit couch oreiller matelas detend relax medit respir alcool exercice "
           "sport lumiere diner tisane",
        de="bett= betten= schlafzimmer nickerchen kaffee koffein tee= bildschirm handy telefon dunkel ruhig "
           "ruhe kuhl wecker routine uhrzeit abend nacht kissen matratze entspann meditat atem atmen alkohol sport "
           "bewegung licht abendessen",
        it="letto camera pisolin caffe caffeina te= tisana camomilla schermo telefon cellular buio silenzi "
           "fresc sveglia routine orari notte cuscin materass rilass medit respir alcol eserciz sport luce luci= "
           "cena= cenare",
        pt="hora= horas= cama quarto cochilo soneca cafe cafeina cha= tela= telas celular telefone escur silenc "
           "fresc despertador rotina horario noite travesseiro colchao relax medit respir alcool exercicio luz= "
           "luzes jantar"),
    _topic(
        "money", "budget presupuest orcament grocer compras+ahorr spesa+risparm courses+econom einkauf+spar "
        "supermerc month+sav month+money mes=+ahorr mes=+dinero mois+econom monat+geld mese+risparm mese+soldi "
        "mes=+economiz mes=+dinheiro",
        en="supermarket store shop buy budget spend expens cost bill income salary track list cheap discount coupon "
           "cash bank account credit debt subscript categor percent rent food meal spreadsheet app= apps= goal "
           "emergen fund invest interest monthly",
        es="supermercado compr presupuest gasto gastar ingreso sueldo salario factura cuenta banco tarjeta credito "
           "deuda lista barat descuento oferta efectivo suscrip categor porcentaje alquiler comida compra apunt "
           "anota registr meta= metas objetivo emergencia fondo invert interes calculo aplicacion mensual",
        fr="supermarche achet budget depense depenser revenu salaire facture compte banque carte credit dette liste "
           "promo reduction soldes especes abonnement categor pourcent loyer courses repas noter note= notez suivi "
           "suivre objectif urgence epargne placement investi tableau appli mensuel virement automati",
        de="supermarkt kauf budget ausgabe einnahme einkommen gehalt rechnung konto bank= banken karte kredit "
           "schulden liste gunstig rabatt angebot bargeld abo= abos abonnement kategor prozent miete einkauf essen "
           "mahlzeit notier aufschreib ziel notgroschen rucklage invest zinsen tabelle app= apps= dauerauftrag "
           "haushaltsbuch monatlich fixkosten",
        it="supermercato compr acquist budget bilancio spesa spese entrat reddito stipendio bollett conto banca "
           "carta credito debit lista sconto offert contanti abbonament categor percent affitto cibo pasti annota "
           "segna traccia obiettiv emergenz fondo invest interess foglio app= mensil automatic",
        pt="supermercado compr orcamento gasto gastar despesa renda salario conta= contas banco cartao credito "
           "divida lista barat desconto promoc oferta assinatura categor porcent aluguel comida compra anot registr "
           "meta= metas objetivo emergencia reserva invest juros planilha aplicativo mensal automatic"),
    _topic(
        "cooking", "cook+learn cook+home cook+start cocin+aprend cocin+casa cucin+impar cucin+casa cozinh+aprend "
        "cozinh+casa cuisin+maison cuisin+apprend koch+hause koch+lern",
        en="minute recipe ingredient knife pan= pans= pot= pots= oven stove boil fry bake roast chop salt pepper "
           "spice herb vegetable egg pasta rice soup sauce meal dish kitchen taste heat video class course",
        es="minuto receta ingrediente cuchillo sarten olla horno fuego hervir freir frito asar hornear cortar picar "
           "sal= pimienta especia hierba verdura huevo pasta arroz sopa salsa plato sabor video clase curso tortilla "
           "ensalada carne pollo pescado legumbre",
        fr="minute recette ingredient couteau poele casserole four= fours= feu= bouillir frire rotir cuire cuisson "
           "couper hacher sel= poivre epice herbe legume oeuf pates riz= soupe sauce plat= plats= saveur gout video "
           "cours omelette salade viande poulet poisson menu",
        de="minute rezept zutat messer pfanne topf ofen herd braten backen schneiden hacken salz pfeffer gewurz "
           "krauter gemuse ei= eier nudel reis= suppe sosse sauce gericht geschmack video kurs omelett salat fleisch "
           "hahnchen fisch vorrat essensplan",
        it="minut ricett ingredient coltell padella pentola forno fuoco bollire friggere arrost cuocere cottura "
           "tagliare tritare sale= pepe= spezie erbe verdur uova uovo pasta riso= zuppa minestr sugo salsa piatt "
           "sapore gusto assaggi video corso frittata insalata carne pollo pesce menu",
        pt="minuto receita ingrediente faca frigideira panela forno fogo ferver fritar assar cortar picar sal= "
           "pimenta tempero especiaria erva legume verdura ovo= ovos= macarrao massa arroz sopa molho prato sabor "
           "gosto video curso aula omelete salada carne frango peixe cardapio"),
    _topic(
        "time", "time=+organiz time=+manag tiempo+organiz temps+ger temps+organis zeit+einteil zeit+organis "
        "tempo+organizz tempo+organiz focus+stud concentr+estudi concentr+etud konzentr+lern concentr+studi "
        "productiv produttiv produtiv produktiv",
        en="room quiet library day= email mail meeting interrupt list priorit calendar schedule plan planner "
           "deadline task goal break pomodoro timer block distract phone notif morning routine habit delegat agenda "
           "minute hour week daily",
        es="habitacion silencio biblioteca jornada correo reunion interrup lista priorid calendario agenda horario "
           "plan= planific plazo tarea objetivo meta= metas pausa descanso pomodoro temporizador bloque distrac "
           "movil telefono notific manana rutina habito delegar minuto hora= horas semana diari",
        fr="piece silence bibliotheque journee creneau courriel mail= mails= appel reunion refus interrupt liste "
           "priorit calendrier agenda planning planifi plan= echeance delai tache objectif pause pomodoro minuteur "
           "bloc distract telephone portable notif matin routine habitude delegu minute heure semaine quotidien",
        de="zimmer stille bibliothek arbeitstag email mail= mails= anruf besprech meeting unterbrech liste priorit "
           "kalender plan= planen plane= planung frist termin aufgabe ziel pause pomodoro timer block ablenk handy "
           "telefon benachricht morgen routine gewohnheit delegier minute stunde woche taglich",
        it="stanza silenzio bibliotec giornata email mail= riunion interruz lista priorit calendario agenda pianific "
           "piano= scadenz compit attivit obiettiv pausa pause pomodoro timer blocc distraz distrar telefon cellular "
           "notific mattina routine abitudin delega minut ore= settiman giornalier",
        pt="quarto silencio biblioteca email reuni interrup lista priorid calendario agenda planej plano prazo "
           "tarefa objetivo meta= metas pausa intervalo pomodoro temporizador cronometro bloco distrac distrai "
           "celular telefone notific manha rotina habito delegar minuto hora= horas semana diari"),
    _topic(
        "running", "run= running jog correr= correre= courir corrida corsa= laufen jogg",
        en="shoe sneaker warm stretch walk pace slow minute kilomet mile distance breath water rest injur muscle "
           "interval week schedule plan heart app= gradual endurance",
        es="zapatilla calentar calentamiento estir camin ritmo despacio lento minuto kilometr distancia respir agua "
           "descans lesion musculo interval semana plan= corazon hidrat suave gradual resistencia",
        fr="chaussure basket echauff etir march rythme lent doucement minute kilometr distance respir eau= repos "
           "bless muscle fraction semaine plan= coeur hydrat progress endurance",
        de="schuh laufschuh aufwarm dehn spazier tempo langsam minute kilometer strecke distanz atem atmen wasser "
           "pause ruhetag erhol verletz muskel interval woche plan= herz trink steiger ausdauer",
        it="scarpe scarpa riscald allung stretching cammin ritmo passo lent minut chilometr distanz respir acqua "
           "ripos infortun muscol interval settiman piano cuore idrat gradual resistenz",
        pt="tenis calcad aquec along caminh ritmo passo devagar lento minuto quilometr distancia respir agua descans "
           "lesao lesoes musculo interval semana plano coracao hidrat gradual resistencia"),
    _topic(
        "exercise", "exercis+regul ejercicio+regul exercice+regul esercizio+regol exercicio+regul sport+regul "
        "bewegung+regelm sport+regelm deporte+regul",
        en="activity club fun= enjoy heart muscle bone sleep mood stress disease health weight energy walk swim bike "
           "gym strength cardio stretch week minute",
        es="actividad horario club corazon musculo hueso sueno animo estres enfermedad salud peso energia camin "
           "nadar bici gimnasio fuerza cardio estir semana minuto",
        fr="activite creneau seance club plais coeur muscle os= sommeil humeur stress maladie sante poids energie "
           "march nager velo salle force cardio etir semaine minute",
        de="aktivitat termin verein spass herz muskel knochen schlaf stimmung stress krankheit gesund gewicht "
           "energie spazier schwimm rad= fahrrad studio kraft cardio dehn woche minute",
        it="attivita orari club divert cuore muscol ossa sonno umore stress malatt salute peso energia cammin nuot "
           "bici palestra forza cardio allung settiman minut",
        pt="atividade horario clube divert coracao musculo osso sono= humor estresse doenca saude peso energia "
           "caminh nadar bicicleta academia forca cardio along semana minuto"),
    _topic(
        "job_interview", "interview+prepar interview+impression entrevista+prepar entretien+prepar "
        "entretien+impression colloquio+prepar vorstellungsgesprach+vorbereit",
        en="company research question answer example practice rehearse dress cloth time punctual early smile eye "
           "confiden resume experience skill strength weakness handshake polite thank",
        es="empresa investig pregunta respuesta ejemplo practic ensay vest ropa puntual temprano sonri ojo= ojos "
           "confianza curriculum experiencia habilidad fortaleza debilidad mano educad gracias",
        fr="entreprise societe renseign question reponse exemple entrain repet tenue vetement heure ponctuel avance "
           "sourire souriez yeux regard confiance cv= experience competence qualite defaut poignee poli merci",
        de="firma unternehmen informier recherch frage antwort beispiel uben ubung probe kleidung kleid punktlich "
           "fruh lachel auge augen selbstbewusst lebenslauf erfahrung fahigkeit starke schwache hand hoflich danke",
        it="aziend ricerca inform domand rispost esempi eserc prova vest abbigliament puntual anticipo sorri occhi "
           "sguardo fiducia sicurezza curriculum esperienz competenz punti forza debolezz stretta mano educat grazie",
        pt="empresa pesquis informe pergunta resposta exemplo pratic ensai roupa vest pontual cedo sorri olho= olhos "
           "confianca curriculo experiencia habilidade ponto forte fraco aperto mao educad obrigad"),
    _topic(
        "plants", "plant+health plant+alive plant+winter plant+sana plante+sante pflanz+gesund zimmerpflanz+gesund "
        "piant+sane planta+saudav houseplant garden+start garden+vegetable huerto jardin+empez potager orto=+inizi "
        "horta+comec gemusegarten",
        en="lettuce tomato bean water light sun window soil pot= pots= drain leaf leaves fertili compost prune "
           "temperature heater draft humid spray root seed weed",
        es="solead hortaliz lechug tomate regar riego agua luz= sol= ventana tierra sustrato maceta drenaj hoja "
           "abono fertiliz compost podar poda= temperatura calefaccion corriente humedad pulveriz raiz semilla",
        fr="ensoleill legume salade tomate arros eau= lumiere soleil fenetre terre terreau pot= pots= drain feuille "
           "engrais compost taill temperature radiateur courant humid vaporis racine graine semis",
        de="sonn sorte beet gemuse salat tomate saat saen giess wasser licht sonne fenster erde topf topfe drain "
           "blatt blatter dunger kompost schneid temperatur heizung zugluft feucht spruh wurzel samen unkraut",
        it="soleggiat ortagg insalata pomodor annaff acqua luce sole finestr terra terriccio vaso vasi drenagg "
           "foglia foglie concim compost pota temperatura termosifon corrent umid nebuliz radic semi erbacce",
        pt="ensolarad hortali alface tomate regar rega agua luz= sol= janela terra vaso vasos drenagem folha adub "
           "compost podar poda= temperatura aquecedor corrente umid borrif raiz raizes semente erva"),
    _topic(
        "language_learning", "language+learn language+second idioma+aprend idioma+nuevo langue+parl langue+apprend "
        "sprache+lern lingua+impar idioma+novo",
        en="job= jobs= career brain word vocabular grammar practice speak listen read write app= apps= course class "
           "teacher tutor movie film series podcast music song native conversation partner travel culture daily "
           "mistake",
        es="empleo carrera cerebro palabra vocabulario gramatica practic habl escuch leer escrib aplicacion app= "
           "curso clase profesor pelicula serie podcast musica cancion nativo conversacion intercambio viaj cultura "
           "diari error errores persona",
        fr="emploi carriere cerveau mot= mots= vocabulaire grammaire pratiqu parl ecout lire lisez ecri appli cours "
           "classe professeur prof= film serie podcast musique chanson natif conversation echange voyag culture "
           "quotidien erreur gens",
        de="job beruf karriere chance reise gehirn wort worter vokabel grammatik uben ubung sprech spricht hor lesen "
           "schreib app= apps= kurs lehrer film serie podcast musik lied mutter muttersprach gesprach tandem reis "
           "kultur taglich fehler mensch",
        it="carriera cervello impiego parol vocabolario grammatica pratic parla ascolt legg scriv app= corso lezion "
           "insegnant film serie podcast musica canzon madrelingua conversazion scambio viagg cultura quotidian "
           "errori persone",
        pt="emprego carreira cerebro palavra vocabulario gramatica pratic falar fala= falando ouvi ouca ler= leia "
           "escrev aplicativo app= curso aula professor filme serie podcast musica cancao nativo conversa "
           "intercambio viaj cultura diari erro= erros pessoas"),
    _topic(
        "stress_breaks", "stress+work stress+travail stress+arbeit stress+lavoro estres+trabajo estresse+trabalho "
        "break=+work breaks=+work pausa+trabajo pause+travail pause+arbeit pausa+lavoro pausa+trabalho "
        "morning+stress manana+estres matin+stress morgen+stress mattin+stress manha+estresse",
        en="home= day= evening break pause breath meditat walk exercis sleep list priorit task boundar colleague "
           "talk rest routine music nature coffee water lunch screen eye focus energy tired burnout prepar night "
           "clothes",
        es="casa= jornada tarde pausa descans respir medit camin ejercicio dorm lista priorid tarea limite companer "
           "habl relaj rutina musica naturaleza cafe agua almuerzo comida pantalla ojos concentr energia cansanc "
           "agotamiento prepar noche ropa",
        fr="maison journee soir pause repos respir medit march exercice sport dorm sommeil liste priorit tache "
           "limite collegue parl detend routine musique nature cafe eau= dejeuner repas ecran yeux concentr energie "
           "fatigue epuisement prepar veille vetement",
        de="hause feierabend abend pause ruhe atem atmen meditat spazier bewegung sport schlaf liste priorit aufgabe "
           "grenze kolleg sprech entspann routine musik natur kaffee wasser mittag essen bildschirm augen konzentr "
           "energie mude erschopf burnout vorbereit kleidung",
        it="casa= giornata sera= pausa pause ripos respir medit passegg cammin eserciz sport sonno dorm lista "
           "priorit compit limit collegh parla rilass routine musica natura caffe acqua pranzo pasto schermo occhi "
           "concentr energi stanchezza esaurimento prepar sera vestiti",
        pt="casa= jornada noite pausa descans respir medit caminh exercicio dorm sono= lista priorid tarefa limite "
           "colega convers falar relax rotina musica natureza cafe agua almoco refeic tela= olhos concentr energia "
           "cansaco esgotamento prepar roupa"),
    _topic(
        "dog", "dog+first dog+adopt perro+primera perro+adopt chien+premiere chien+adopt hund+ersten hund+adopt "
        "cane=+prima cane=+adott cachorro+primeira cachorro+adot",
        en="time= money year walk food feed vet vaccin train leash toy exercis space budget cost breed energy rule "
           "treat bowl bed= patien age= groom",
        es="tiempo dinero anos= pase comida aliment veterinari vacuna adiestr entren correa juguete ejercicio "
           "espacio presupuesto coste costo raza energia regla premio cuenco cama pacien edad cepill",
        fr="temps argent ans= annee promen sortie nourri aliment croquette veterinaire vaccin dress educ laisse "
           "jouet exercice espace budget cout race energie regle friandise gamelle panier patien age= brosse",
        de="zeit= geld jahre gassi spazier futter tierarzt impf erzieh training leine spielzeug bewegung platz "
           "budget kosten rasse energie wohnung regel leckerli napf korb geduld alter burst",
        it="tempo soldi anni= passegg cibo crocchett aliment veterinari vaccin addestr educa guinzaglio giocattol "
           "gioc eserciz spazio budget cost razza energia regol premi ciotola cuccia pazien eta= spazzol",
        pt="tempo dinheiro anos= passe comida racao aliment veterinari vacina adestr trein coleira guia brinquedo "
           "exercicio espaco orcamento custo raca energia regra petisco tigela caminha pacien idade escov"),
    _topic(
        "travel", "trip+cheap viaje+barato voyage+cher reise+gunstig viaggio+economico viagem+barata flight+long "
        "vuelo+largo vol=+long flug+lang volo+lungo voo=+longo camping",
        en="pillow earplug hour drink stand ticket flight train bus hostel hotel book season offer budget compare "
           "app= pack luggage bag walk water snack seat stretch sleep headphone movie socks tent sleeping flashlight "
           "food",
        es="cojin tapon hora= beber levant billete pasaje vuelo tren autobus albergue hostal hotel reserv temporada "
           "oferta presupuesto compar aplicacion maleta equipaje mochila camin agua comida asiento estir dorm "
           "auricular libro pelicula calcetin tienda saco linterna",
        fr="oreiller coussin bouchon heure boire leve= levez billet vol= vols= train bus= auberge hotel reserv "
           "saison offre promo budget compar appli valise bagage sac= march eau= collation asiento siege etir dorm "
           "casque ecouteur livre film chaussette tente lampe nourriture",
        de="kissen ohrstopsel stunde trink ticket fahrkarte flug zug= bus= hostel herberge hotel buch saison angebot "
           "budget vergleich app= koffer gepack rucksack wander wasser snack sitz dehn schlaf kopfhorer film socken "
           "zelt schlafsack taschenlampe essen",
        it="cuscin tappi ora= bere alza bigliett volo voli treno autobus ostello hotel albergo prenot stagion offert "
           "budget confront app= valigia bagagl zaino cammin acqua snack spuntin sedil posto allung dorm cuffie "
           "libro film calz tenda sacco torcia cibo",
        pt="travesseiro almofada tampao hora= beber levant passagem bilhete voo= voos= trem onibus albergue hostel "
           "hotel reserv temporada oferta promoc orcamento compar aplicativo mala bagagem mochila caminh agua lanche "
           "assento along dorm fone livro filme meia barraca lanterna comida"),
    _topic(
        "reading", "read+book read+novel leer=+libro lire=+livre lesen+buch leggere+libri ler=+livro novel+read "
        "novela+leer roman=+lire romane+lesen romanzi+legg romances+ler",
        en="evening night sleep choose bored boring escape lives everyday minute day page habit wait commute bus= "
           "train bed= phone genre library audiobook club short goal time list world story character author relax "
           "imagin",
        es="noche dorm elig aburr dejar vidas escap rutina mundo minuto dia= pagina habito espera cola= autobus "
           "transporte cama movil genero biblioteca audiolibro club corto meta= objetivo tiempo lista historia "
           "personaje autor relaj imagin",
        fr="soir nuit dorm choisi ennui abandon evad vies= monde minute jour pages habitude attente file= transport "
           "metro lit= telephone genre bibliotheque audio club court objectif temps liste histoire personnage auteur "
           "detend imagin",
        de="abend nacht schlaf wahl langweil alltag abschalt eintauch minute tag= tage seite gewohnheit warte bahn= "
           "zug= pendel bett= handy genre bibliothek horbuch hoerbuch club kurz ziel zeit liste welt geschichte "
           "figur autor entspann fantasie",
        it="sera= notte dormi scegli annoi lascia evad vite= mondi minut giorno pagin abitudin attesa fila= autobus "
           "treno mezzi letto telefon genere bibliotec audiolibr club brev obiettiv tempo lista mondo storia "
           "personagg autor rilass immagin",
        pt="noite dormir escolh chato larg vidas escap rotina mundo minuto dia= dias= pagina habito espera fila= "
           "onibus transporte cama celular genero biblioteca audiolivro clube curto meta= objetivo tempo lista "
           "historia personage autor relax imagin"),
    _topic(
        "water", "water+drink agua+beber eau=+boire wasser+trinken acqua+bere=",
        en="bottle glass cup meal alarm remind app= fruit lemon tea= body energy headache skin kidney temperature "
           "thirst tired concentrat digest liter litre",
        es="botella vaso taza comida alarma recordatorio aplicacion fruta limon te= cuerpo energia cabeza dolor piel "
           "rinon temperatura sed= cansanc concentr digest litro",
        fr="bouteille verre tasse gourde repas alarme rappel appli fruit citron the= corps energie tete mal= peau "
           "rein temperature soif fatigue concentr digest litre",
        de="flasche glas tasse becher mahlzeit wecker erinner app= obst frucht zitrone tee= korper energie kopf haut "
           "niere temperatur durst mude konzentr verdau liter",
        it="bottigli borraccia bicchier tazza pasti sveglia promemoria app= frutta limone te= corpo energia testa "
           "mal= pelle reni temperatura sete stanchezza concentr digest litri",
        pt="garrafa copo xicara refeic alarme lembrete aplicativo fruta limao cha= corpo energia cabeca dor= pele "
           "rins temperatura sede cansaco concentr digest litro"),
    _topic(
        "pets", "cat+dog gato+perro chat+chien katze+hund gatto+cane gato+cachorro",
        en="independent walk attention space litter box time loyal train affection energy alone noise outdoor",
        es="independiente pase atencion espacio arena caja tiempo leal fiel adiestr carino energia solo ruido calle",
        fr="independant promen attention espace litiere temps fidele dress affection energie seul bruit exterieur "
           "sortir",
        de="unabhang gassi spazier aufmerksam platz katzenklo zeit treu erzieh zuneig energie allein larm drauss "
           "auslauf",
        it="indipendent passegg attenzion spazio lettiera tempo fedel addestr affett energia soli rumor fuori",
        pt="independente passe atencao espaco caixa areia tempo leal fiel adestr carinho energia sozinho barulho "
           "rua="),
    _topic(
        "recycling", "recycl recicl ricicl",
        en="waste landfill resource energy pollution plastic paper glass metal tree raw material emission",
        es="residuo basura vertedero recurso energia contamina plastico papel vidrio metal arbol materia prima "
           "emision",
        fr="dechet poubelle decharge ressource energie pollution plastique papier verre metal arbre matiere premiere "
           "emission",
        de="mull abfall deponie ressource rohstoff energie verschmutz plastik papier glas metall baum material "
           "emission",
        it="rifiut discarica risors energia inquinament plastica carta vetro metall alber materi prime emission",
        pt="residuo lixo aterro recurso energia polui plastico papel vidro metal arvore materia prima emiss"),
    _topic(
        "used_car", "car+used coche+segunda voiture+occasion gebrauchtwagen auto+usat carro+usado",
        en="mileage kilomet history service maintenance mechanic test drive engine brake tire tyre rust accident "
           "price owner document paper inspect",
        es="kilometr historial mantenimiento revision mecanico prueba conduc motor freno neumatico oxido accidente "
           "precio dueno propietario documento papeles inspecc",
        fr="kilometr historique entretien revision mecanicien essai conduire moteur frein pneu rouille accident prix "
           "proprietaire document papier controle carnet",
        de="kilometer kilometerstand historie wartung inspektion mechanik werkstatt probefahrt motor bremse reifen "
           "rost unfall preis besitzer dokument papier scheckheft tuv",
        it="chilometr storico manutenzion tagliand meccanic prova guida motore freni gomme pneumatic ruggin incident "
           "prezzo proprietari document revision",
        pt="quilometr historico manutenc revisao mecanico test dirig motor freio pneu ferrug acidente preco dono "
           "proprietario documento papel vistoria"),
    _topic(
        "autumn_leaves", "leaves+color leaves+autumn hojas+color feuilles+couleur blatter+verfarb foglie+color "
        "folhas+cor=",
        en="chlorophyll light sun cold temperature day pigment carotenoid anthocyanin yellow orange red green winter "
           "sugar energy tree",
        es="clorofila luz= sol= frio temperatura dias pigmento caroteno antocian amarill naranja rojo verde invierno "
           "azucar energia arbol",
        fr="chlorophylle lumiere soleil froid temperature jours pigment carot anthocyan jaune orange rouge vert "
           "hiver sucre energie arbre",
        de="chlorophyll licht sonne kalt kalte temperatur tage pigment carotin karotin anthocyan gelb orange rot= "
           "rote grun winter zucker energie baum",
        it="clorofilla luce sole fredd temperatur giorni pigment carotenoid antocian giall arancion ross verde "
           "inverno zuccher energia alber",
        pt="clorofila luz= sol= frio temperatura dias pigmento caroten antocian amarel laranja vermelh verde inverno "
           "acucar energia arvore"),
    _topic(
        "friend", "friend+good amigo+buen ami=+bon freund+gut amico+buon amigo+bom",
        en="rely there trust honest truth loyal listen judg support help respect kind time laugh secret understand "
           "care",
        es="cuenta= contigo confianza confiar honest sincer verdad juzg leal escuch apoy ayud respet amable tiempo "
           "reir secreto entend",
        fr="compter confiance honnete sincer verite vrai= juge fidele loyal ecout soutien soutient aide respect "
           "gentil temps rire secret comprend",
        de="hort= verlass freu vertrauen ehrlich wahrheit urteil treu loyal zuhor zuhoren unterstutz hilf respekt "
           "freundlich zeit lachen geheim versteh",
        it="contare fiducia onest sincer verita giudic leal fedel ascolt sosten support aiut rispett gentil tempo "
           "ridere segret capisc comprend",
        pt="contar confianca confia honest sincer verdade julg leal fiel escut apoi ajud respeit gentil tempo rir= "
           "risad segredo entend"),
    _topic(
        "small_apartment", "apartment+small piso+pequeno appartement+petit wohnung+klein appartamento+piccolo "
        "apartamento+pequeno",
        en="light mirror color colour white furniture storage shelf shelves curtain window clutter wall rug bed= "
           "sofa vertical",
        es="luz= espejo color blanco mueble almacen estante cortina ventana desorden pared alfombra cama sofa "
           "vertical",
        fr="lumiere miroir couleur blanc meuble rangement etagere rideau fenetre desordre mur= murs= tapis lit= "
           "canape vertical",
        de="licht spiegel farbe weiss mobel stauraum regal vorhang fenster unordnung wand wande teppich bett= sofa "
           "vertikal",
        it="luce specchi color bianc mobil contenitor scaffal mensol tend finestr disordin parete pareti tappet "
           "letto divano vertical",
        pt="luz= espelho cor= cores branc movel moveis armazen prateleira cortina janela bagunca parede tapete cama "
           "sofa vertical"),
    _topic(
        "snacks", "snack tentempie en-cas spuntin lanche",
        en="fruit nut yogurt vegetable carrot apple banana hummus cheese protein fiber sugar almond",
        es="fruta fruto nuez nueces almendra yogur verdura zanahoria manzana platano hummus queso proteina fibra "
           "azucar",
        fr="fruit noix amande yaourt legume carotte pomme banane houmous fromage proteine fibre sucre",
        de="obst frucht nuss nusse mandel joghurt gemuse karotte mohre apfel banane hummus kase protein eiweiss "
           "ballast zucker",
        it="frutta frutti noci mandorl yogurt verdur carot mela banan hummus formaggi protein fibr zuccher",
        pt="fruta castanha noz= nozes amendoa iogurte legume cenoura maca banana homus queijo proteina fibra acucar"),
    _topic(
        "rainy_day", "rain lluvi pluie pluvieux regen pioggi piovos chuva chuvoso",
        en="movie film book game board puzzle cook bake music paint draw museum friend blanket tea= craft",
        es="pelicula libro juego mesa puzle rompecabezas cocin hornear musica pint dibuj museo amigo manta te= "
           "manualidad",
        fr="film livre jeu= jeux societe puzzle cuisin patisser gateau musique peindre peinture dessin musee ami= "
           "amis= couverture the= bricolage",
        de="film buch spiel brettspiel puzzle koch backen kuchen musik mal= malen zeichn museum freund decke tee= "
           "basteln",
        it="film libro gioc puzzle cucin dolc torta musica diping disegn museo amic coperta te= lavoretti",
        pt="filme livro jogo= jogos tabuleiro quebra-cabeca cozinh bolo musica pint desenh museu amigo cobertor cha= "
           "artesanato"),
    _topic(
        "public_speaking", "public=+speak speech hablar+publico= parler+public= offentlich+sprech parlare+pubblico "
        "falar+publico=",
        en="practice rehearse mirror record video audience slow breath pause eye contact prepare note nervous "
           "confiden story group feedback",
        es="practic ensay espejo grab video audiencia publico despacio respir pausa ojos contacto prepar nota "
           "nervios confianza historia grupo opinion",
        fr="pratiqu entrain repet miroir enregistr video audience public lentement respir pause yeux regard prepar "
           "note stress trac confiance histoire groupe retour",
        de="uben ubung probe spiegel aufnehm video publikum langsam atem atmen pause augen blickkontakt vorbereit "
           "notiz nervos lampenfieber selbstvertrauen geschichte gruppe feedback",
        it="pratic eserc prova specchi registr video pubblico lent respir pausa occhi sguardo prepar appunt ansia "
           "nervos fiducia sicurezza storia gruppo feedback",
        pt="pratic ensai espelho grav video publico devagar respir pausa olhos contato prepar nota nervos confianca "
           "historia grupo feedback"),
)


_WORD = re.compile(r"[^\W\d_]+(?:['’-][^\W\d_]+)*")


def _fold_word(word: str) -> str:
    return fold(word).replace("ß", "ss").replace("œ", "oe").replace("æ", "ae")


def _folded_words(text: str) -> list[str]:
    out = []
    for w in _WORD.findall(text):
        w = _fold_word(w).replace("’", "'")
        out.append(w)
        if "'" in w or "-" in w:  # "l'acqua" is "acqua"; "en-cas" stays whole too
            out += [p for p in re.split(r"['-]", w) if p]
    return out


def _matches(word: str, stem: str) -> bool:
    return word == stem[:-1] if stem.endswith("=") else word.startswith(stem)


@lru_cache(maxsize=4096)
def topics_of(request: str) -> tuple[Topic, ...]:
    """The topics whose cues the request names."""
    ws = _folded_words(request)
    return tuple(t for t in TOPICS if any(all(any(_matches(w, part) for w in ws) for part in cue.split("+"))
                                          for cue in t.cues))


def on_topic_words(request: str, response: str, lang: str) -> set[str] | None:
    """The distinct stems of the request's topics' words in `lang` that the response uses and the request does
    not; None when the request names none of the topics (or `lang` is not one of theirs)."""
    topics = topics_of(request)
    if not topics or lang not in LANGUAGES:
        return None
    asked, said = set(_folded_words(request)), set(_folded_words(response))
    stems = {s for t in topics for s in t.words[lang]}
    return {s for s in stems if any(_matches(w, s) for w in said) and not any(_matches(w, s) for w in asked)}


def off_topic(request: str, response: str, lang: str) -> bool:
    """Whether a response in `lang` to a request on a known topic names fewer than `MIN_TOPIC_WORDS` of its words
    (one in an answer of a sentence, under `SHORT_ANSWER_WORDS` words: "Die Blätter verfärben sich, weil das
    Chlorophyll abgebaut wird.")."""
    found = on_topic_words(request, response, lang)
    if found is None:
        return False
    return len(found) < (1 if len(_WORD.findall(response)) < SHORT_ANSWER_WORDS else MIN_TOPIC_WORDS)
